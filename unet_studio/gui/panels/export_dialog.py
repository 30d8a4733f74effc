"""The export dialog: which outputs, for the current image or all, into which folder."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

from ..controllers.prediction import EXPORTS

EXPORT_TEXT = {
    "labels": "Predicted labels (NAME_labels.tif)",
    "probabilities": "Probabilities (NAME_probabilities.tif)",
    "instances": "Instances, touching objects split (NAME_instances.tif)",
    "measurements": "Measurements of the instances (NAME_measurements.csv)",
    "annotations": "Painted labels (NAME_annotations.tif)",
    "model": "Model folder (model/)",
}


class ExportDialog(QtWidgets.QDialog):
    """Modal dialog; :meth:`choice` gives (folder, set of outputs, scope) after ``exec()``."""

    def __init__(self, folder: Path, has_model: bool, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.checks: dict[str, QtWidgets.QCheckBox] = {}
        form = QtWidgets.QVBoxLayout(self)
        for name in EXPORTS:
            check = QtWidgets.QCheckBox(EXPORT_TEXT[name])
            needs_model = name != "annotations"
            check.setChecked(has_model or not needs_model)
            check.setEnabled(has_model or not needs_model)
            form.addWidget(check)
            self.checks[name] = check
        self.scope_all = QtWidgets.QCheckBox("All images of the project (else the current image)")
        form.addWidget(self.scope_all)
        self.tta_check = QtWidgets.QCheckBox("Test-time augmentation: average 8 flips and rotations "
                                             "(8x slower, slightly more accurate)")
        self.tta_check.setEnabled(has_model)
        form.addWidget(self.tta_check)
        row = QtWidgets.QHBoxLayout()
        self.folder_edit = QtWidgets.QLineEdit(str(folder))
        browse = QtWidgets.QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        form.addLayout(row)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addWidget(buttons)

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export into", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def choice(self) -> tuple[Path, set[str], str]:
        what = {name for name, check in self.checks.items() if check.isChecked() and check.isEnabled()}
        return Path(self.folder_edit.text()), what, "all" if self.scope_all.isChecked() else "image"

    def tta(self) -> bool:
        """Whether to predict with test-time augmentation."""
        return self.tta_check.isChecked() and self.tta_check.isEnabled()
