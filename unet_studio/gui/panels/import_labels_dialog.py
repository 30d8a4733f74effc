"""The dialog of File > Import Labels when a file's values are not the project's classes: value -> class.

One combo box per value found (or one for "every non-zero value" of an object label image), a choice of
what 0 means (unlabelled, or background: class 1), and a button that makes every non-zero value the
foreground. It starts from the proposal of :func:`~unet_studio.core.labels.propose_mapping`; tests set the
combo boxes and call ``accept()`` (or pass their own chooser to the project actions). An object label image
is offered as objects too ("Objects (instances)", chosen by default when it has too many values to list):
background and the object class, with the instances kept for training (see :mod:`..label_import`).
"""

from __future__ import annotations

from PySide6 import QtWidgets

from ...core.errors import DataError
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
    as_objects : QRadioButton or None
        Checked when an object label image is imported as objects (instances kept for training); None when
        the file does not look like one or the project has no object class.
    """

    #: The text of the choice that imports an object label image as objects.
    OBJECTS_TEXT = "Objects (instances): train the object output"

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
        self.as_objects = self.as_classes = None
        self._objects_mapping = self._offer_objects(request)
        if self._objects_mapping is not None:
            intro.setText(intro.text().replace("Choose the class each value becomes.", "Import it as objects "
                                               "(as 'unet-studio train --instances' reads it), or as classes."))
            self._add_objects_choice(layout, request)

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

        if self.as_objects is not None:
            # Too many values to list one by one: an object label image, imported as objects by default.
            self.as_objects.setChecked(self.others_combo is not None)
            self._values_widgets = [w for w in self.findChildren(QtWidgets.QWidget)
                                    if w not in (self.as_objects, self.as_classes, intro, self._kind_box)]
            self.as_objects.toggled.connect(self._show_values)
            self._show_values()
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok).setText("Import")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    @staticmethod
    def _offer_objects(request: LabelImport) -> LabelMapping | None:
        """The objects mapping when the file looks like an object label image and the project can take it."""
        if request.kind != "instances":
            return None
        try:
            return request.objects_mapping()
        except DataError:
            return None

    def _add_objects_choice(self, layout: QtWidgets.QVBoxLayout, request: LabelImport) -> None:
        names = request.class_names
        objects = self._objects_mapping
        self._kind_box = QtWidgets.QGroupBox("Import as")
        kind_layout = QtWidgets.QVBoxLayout(self._kind_box)
        self.as_objects = QtWidgets.QRadioButton(self.OBJECTS_TEXT)
        self.as_objects.setToolTip(f"0 -> {names[objects.values[0] - 1]}, every object -> "
                                   f"{names[objects.others - 1]}; the objects are kept so that training separates "
                                   "touching objects, as 'unet-studio train --instances' does")
        self.as_classes = QtWidgets.QRadioButton("Classes: choose the class each value becomes (below)")
        self.as_classes.setChecked(True)
        kind_layout.addWidget(self.as_objects)
        kind_layout.addWidget(self.as_classes)
        layout.addWidget(self._kind_box)

    def _show_values(self) -> None:
        """The value -> class choices apply only when the file is imported as classes."""
        for widget in self._values_widgets:
            widget.setEnabled(not self.as_objects.isChecked())

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
        """The mapping chosen: file value -> class value (0 = unlabelled), or the objects mapping."""
        if self.as_objects is not None and self.as_objects.isChecked():
            return self._objects_mapping
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
