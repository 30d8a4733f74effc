"""First-use help: the hint on the empty canvas and the Help > Getting started page.

The hint says the four steps of the work (open, paint, train, correct) while nothing is painted yet, and
goes away with the first stroke: it is for the first minutes, not a permanent banner. The page says the
same at more length, points to the shortcuts, and says where the files go.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

__all__ = ["FirstRunHint", "GettingStartedDialog", "HINT_TEXT", "getting_started_html"]

HINT_TEXT = ("1. Open an image (File > Open Image, or drop it here)    2. Paint a few strokes of each class\n"
             "3. Press Train    4. Correct the prediction and train again")


class FirstRunHint(QtWidgets.QLabel):
    """The steps of the work, over the top of ``canvas`` while nothing is painted; gone after the first stroke.

    Parameters
    ----------
    canvas : QWidget
        The image view it floats over (it lets every mouse event and drop through).
    session : Session
        Tells it when an image opens and when labels are painted.
    """

    def __init__(self, canvas: QtWidgets.QWidget, session) -> None:
        super().__init__(HINT_TEXT, canvas)
        self.session = session
        self.dismissed = False  # a stroke was painted in this window: the person knows the way now
        self.setWordWrap(True)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setStyleSheet("QLabel { background: rgba(20, 20, 20, 200); color: #f0f0f0; border-radius: 6px;"
                           " padding: 10px; font-size: 13px; }")
        canvas.installEventFilter(self)
        session.labels_changed.connect(self._on_labels_changed)
        for signal in (session.images_changed, session.project_changed, session.current_changed):
            signal.connect(self.refresh)
        self.refresh()

    def wanted(self) -> bool:
        """Whether the hint should show: no stroke painted yet (in this window or in the open project)."""
        return not self.dismissed and not self.session.has_labels()

    def refresh(self, *_args) -> None:
        """Show or hide the hint for the session's state, and place it."""
        self.setVisible(self.wanted())
        if not self.isHidden():
            self._place()

    def _on_labels_changed(self, *_args) -> None:
        if self.dismissed:
            return  # no scan of the labels on every stroke once the hint is gone
        if self.session.has_labels():
            self.dismissed = True
            self.hide()

    def _place(self) -> None:
        canvas = self.parentWidget()
        width = min(canvas.width() - 40, 760)
        self.setFixedWidth(max(width, 200))
        self.adjustSize()
        # Centred on an empty canvas; at the top, over the image's edge, once an image is shown.
        top = 16 if self.session.current is not None else max((canvas.height() - self.height()) // 2, 16)
        self.move((canvas.width() - self.width()) // 2, top)
        self.raise_()

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        placing = (QtCore.QEvent.Type.Resize, QtCore.QEvent.Type.Show)
        if watched is self.parentWidget() and event.type() in placing and not self.isHidden():
            self._place()
        return False


def getting_started_html(untitled_folder: Path) -> str:
    """The Getting started page (HTML); ``untitled_folder`` is where unsaved projects are kept meanwhile."""
    return f"""
<h2>Getting started</h2>
<p>UNet Studio learns to segment your images from a few strokes you paint, then segments the rest.</p>
<ol>
<li><b>Open an image</b>: File &gt; Open Image (Ctrl+O), or drop image files on the window. An image of
another kind than the project's images (other channels, pixel type or size) is offered a project of its
own: one project trains one model with one set of classes.</li>
<li><b>Paint a few strokes of each class</b> with the brush (B): press 1, 2, ... to choose the class
(class 1 is the background). A few strokes across the typical structures are enough to start.</li>
<li><b>Press Train</b> (the Train panel on the right). The prediction appears as an overlay while the model
learns; the threshold slider changes it live.</li>
<li><b>Correct and train again</b>: paint over the mistakes, or press Ctrl+Return to accept the prediction
of a slice as labels and fix the few wrong pixels, then press Train again ("Continue from current model"
keeps what the model learnt).</li>
<li><b>Predict and export</b>: Predict &gt; Predict images..., then File &gt; Export for label images,
probabilities, objects and measurements (the command line <code>unet-studio predict</code> writes the same).</li>
</ol>
<p>All keyboard and mouse shortcuts: Help &gt; Shortcuts (F1).</p>
<h3>Where the files go</h3>
<ul>
<li>A <b>project</b> is a folder you choose (File &gt; Save Project, or New Project): <code>project.json</code>
(the image list, classes and settings), <code>labels/NAME_labels.tif</code> (your strokes, one file per image)
and <code>models/current/</code> (the trained model). Your images stay where they are.</li>
<li>Until you save it, an <b>untitled project</b> is autosaved into a recovery folder
(<code>{untitled_folder}</code>) so that nothing is lost in a crash; the title keeps its <b>*</b> until you
choose a folder. Closing asks whether to save it.</li>
<li><b>Exports</b> go to the folder you choose in File &gt; Export.</li>
</ul>
"""


class GettingStartedDialog(QtWidgets.QDialog):
    """Help > Getting started: the page in a text browser (non-modal, closed with Close or Escape)."""

    def __init__(self, untitled_folder: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Getting started")
        self.resize(640, 560)
        self.browser = QtWidgets.QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(getting_started_html(untitled_folder))
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.browser)
        layout.addWidget(buttons)
