"""The painting tool bar: brush, eraser, fill, picker, brush size; bound both ways to PaintTools."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from ..tools import TOOL_KEYS, TOOLS, PaintTools

TOOL_TEXT = {"brush": "Brush", "eraser": "Eraser", "fill": "Fill", "picker": "Pick class"}
TOOL_TIPS = {
    "brush": "Paint the selected class (left drag); pan with the middle button or Space/Ctrl + drag",
    "eraser": "Erase labels back to unlabelled",
    "fill": "Fill the clicked region with the selected class: on unlabelled pixels, the connected region of "
            "similar intensity (Tolerance); on a label, that connected label",
    "picker": "Pick the class under the cursor",
}


class PaintToolBar(QtWidgets.QToolBar):
    """Checkable tool actions (with their shortcut keys) and a brush size spin box."""

    def __init__(self, tools: PaintTools, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Tools", parent)
        self.tools = tools
        self.setObjectName("tools_toolbar")
        group = QtGui.QActionGroup(self)
        group.setExclusive(True)
        self.tool_actions: dict[str, QtGui.QAction] = {}
        for name in TOOLS:
            action = QtGui.QAction(TOOL_TEXT[name], self)
            action.setCheckable(True)
            action.setShortcut(QtGui.QKeySequence(TOOL_KEYS[name]))
            action.setToolTip(f"{TOOL_TIPS[name]} ({TOOL_KEYS[name]})")
            action.triggered.connect(lambda _=False, n=name: tools.set_tool(n))
            group.addAction(action)
            self.addAction(action)
            self.tool_actions[name] = action
        self.addSeparator()
        self.addWidget(QtWidgets.QLabel(" Size "))
        self.size_spin = QtWidgets.QSpinBox()
        self.size_spin.setRange(1, 400)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush diameter ([ smaller, ] larger; also Ctrl+wheel or Shift+drag on the image)")
        self.size_spin.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
        self.smaller_action = QtGui.QAction("−", self)
        self.smaller_action.setShortcut(QtGui.QKeySequence("["))
        self.smaller_action.triggered.connect(tools.shrink_brush)
        self.larger_action = QtGui.QAction("+", self)
        self.larger_action.setShortcut(QtGui.QKeySequence("]"))
        self.larger_action.triggered.connect(tools.grow_brush)
        self.smaller_action.setToolTip("Smaller brush ([)")
        self.larger_action.setToolTip("Larger brush (])")
        self.addAction(self.smaller_action)
        self.addWidget(self.size_spin)
        self.addAction(self.larger_action)
        self._add_tolerance(tools)

        self.size_spin.valueChanged.connect(tools.set_brush_size)
        tools.brush_size_changed.connect(self._show_size)
        tools.tool_changed.connect(self._show_tool)
        self._show_size(tools.brush_size)
        self._show_tool(tools.tool)

    def _add_tolerance(self, tools: PaintTools) -> None:
        """The fill tolerance, shown while the fill tool is active (its only option)."""
        self.tolerance_spin = QtWidgets.QSpinBox()
        self.tolerance_spin.setRange(0, 100)
        self.tolerance_spin.setSuffix(" %")
        self.tolerance_spin.setValue(tools.fill_tolerance)
        self.tolerance_spin.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
        self.tolerance_spin.setToolTip("Fill tolerance: how far (in % of the display range) a pixel may differ from "
                                       "the clicked one and still be filled; 100 % fills up to the labels only")
        self.tolerance_spin.valueChanged.connect(tools.set_fill_tolerance)
        tools.fill_tolerance_changed.connect(self._show_tolerance)
        label = QtWidgets.QLabel(" Tolerance ")
        self.tolerance_actions = [self.addWidget(label), self.addWidget(self.tolerance_spin)]

    def _show_tolerance(self, percent: int) -> None:
        with QtCore.QSignalBlocker(self.tolerance_spin):
            self.tolerance_spin.setValue(percent)

    def _show_size(self, size: int) -> None:
        with QtCore.QSignalBlocker(self.size_spin):
            self.size_spin.setValue(size)

    def _show_tool(self, name: str) -> None:
        self.tool_actions[name].setChecked(True)
        for action in self.tolerance_actions:
            action.setVisible(name == "fill")
