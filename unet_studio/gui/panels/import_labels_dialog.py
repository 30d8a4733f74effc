"""The dialog of File > Import Labels when a file's values are not the project's classes: value -> class.

One combo box per value found (or one for "every non-zero value" of an object label image), a choice of
what 0 means (unlabelled, or background: class 1), and a button that makes every non-zero value the
foreground. It starts from the proposal of :func:`~unet_studio.core.labels.propose_mapping`; tests set the
combo boxes and call ``accept()`` (or pass their own chooser to the project actions).
"""

from __future__ import annotations

from PySide6 import QtWidgets

from ...core.labels import LabelMapping
from ..label_import import KIND_TEXT, LabelImport


class ImportLabelsDialog(QtWidgets.QDialog):
    """Choose the class of each value of an imported label image; :meth:`mapping` is the choice.

    Attributes
    ----------
    value_combos : dict of int to QComboBox
        One per non-zero value listed (index 0 = unlabelled, k = class k).
    others_combo : QComboBox or None
        The class of every non-zero value when there are too many to list.
    zero_background : QRadioButton or None
        Checked when 0 means background (class 1); None when the file holds no 0.
    """

    def __init__(self, request: LabelImport, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.setWindowTitle(f"Import labels: {request.path.name}")
        proposal = request.proposal()
        names = ["(unlabelled)", *request.class_names]
        layout = QtWidgets.QVBoxLayout(self)
        count = len(request.nonzero)
        intro = QtWidgets.QLabel(f"'{request.path.name}' holds {len(request.found)} distinct values: "
                                 f"{KIND_TEXT[request.kind]}. Choose the class each value becomes.")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.zero_unlabelled = self.zero_background = None
        if request.has_zero:
            zero_box = QtWidgets.QGroupBox("Pixels of value 0")
            zero_layout = QtWidgets.QVBoxLayout(zero_box)
            self.zero_unlabelled = QtWidgets.QRadioButton("0 = unlabelled (those pixels are not used for training)")
            self.zero_background = QtWidgets.QRadioButton(f"0 = {request.class_names[0]} (class 1: every pixel "
                                                          "of the image is labelled)")
            self.zero_background.setChecked(proposal.values.get(0, 0) == 1)
            self.zero_unlabelled.setChecked(not self.zero_background.isChecked())
            zero_layout.addWidget(self.zero_unlabelled)
            zero_layout.addWidget(self.zero_background)
            layout.addWidget(zero_box)

        form = QtWidgets.QFormLayout()
        self.value_combos: dict[int, QtWidgets.QComboBox] = {}
        self.others_combo: QtWidgets.QComboBox | None = None
        listed = [v for v in request.nonzero if v in proposal.values]
        for value in listed:
            self.value_combos[value] = self._combo(names, proposal.values[value])
            form.addRow(f"Value {value}", self.value_combos[value])
        if len(listed) < count:
            self.others_combo = self._combo(names, proposal.others)
            form.addRow(f"All {count - len(listed)} non-zero values", self.others_combo)
        layout.addLayout(form)
        if len(self.value_combos) > 1 and len(names) > 2:
            foreground = QtWidgets.QPushButton(f"All non-zero values -> {names[min(2, len(names) - 1)]}")
            foreground.clicked.connect(self.all_nonzero_to_foreground)
            layout.addWidget(foreground)

        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _combo(names: list[str], current: int) -> QtWidgets.QComboBox:
        combo = QtWidgets.QComboBox()
        combo.addItems(names)
        combo.setCurrentIndex(current if 0 <= current < len(names) else 0)
        return combo

    def all_nonzero_to_foreground(self) -> None:
        """Every non-zero value becomes class 2 (the foreground of a two-class project)."""
        foreground = min(2, len(self.request.class_names))
        for combo in [*self.value_combos.values(), *([self.others_combo] if self.others_combo else [])]:
            combo.setCurrentIndex(foreground)

    def mapping(self) -> LabelMapping:
        """The mapping chosen: file value -> class value (0 = unlabelled)."""
        values = {value: combo.currentIndex() for value, combo in self.value_combos.items()}
        if self.zero_background is not None:
            values[0] = 1 if self.zero_background.isChecked() else 0
        others = self.others_combo.currentIndex() if self.others_combo is not None else 0
        return LabelMapping(values, others)


def ask_label_mapping(request: LabelImport, parent: QtWidgets.QWidget | None = None) -> LabelMapping | None:
    """Show :class:`ImportLabelsDialog` (modal); the mapping chosen, or None when cancelled."""
    dialog = ImportLabelsDialog(request, parent)
    try:
        return dialog.mapping() if dialog.exec() else None
    finally:
        dialog.deleteLater()
