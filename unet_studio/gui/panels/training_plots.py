"""The Training panel's curves: loss and validation over the steps of every run of the session.

Runs follow each other on one step axis: a second run's points start where the first one's ended, after a
dashed line that marks the new run, in both plots at once. Both plots share the x axis, which always
starts at step 0 and ends at the latest step; validation scores are drawn on a fixed 0..1 axis (a single
point never gets a range of its own).
"""

from __future__ import annotations

import pyqtgraph as pg

PLOT_HEIGHT = 110
_RUN_PEN = pg.mkPen("#909090", width=1, style=pg.QtCore.Qt.PenStyle.DashLine)


#: Width in pixels of the plots' value axes (room for labels such as 0.0001).
LEFT_AXIS_WIDTH = 44


class CurvePlot(pg.PlotWidget):
    """A small plot of one or more named curves that grow point by point."""

    def __init__(self, title: str, names_and_colors: list[tuple[str, str]], parent=None) -> None:
        super().__init__(parent=parent)
        self.setMinimumHeight(PLOT_HEIGHT)
        self.setMaximumHeight(2 * PLOT_HEIGHT)
        self.setTitle(title, size="9pt")
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.showGrid(x=True, y=True, alpha=0.2)
        # One width for every plot's value axis: plots linked on x then show the same steps one above the other
        # (with widths that follow the tick labels, a loss of "1.25" against scores of "0.8" shifts one plot).
        self.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        if len(names_and_colors) > 1:
            # Bottom right: scores rise toward the top right, where a legend would hide the latest ones.
            self.addLegend(offset=(-5, -5), labelTextSize="8pt")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._points: dict[str, tuple[list[float], list[float]]] = {}
        self.run_lines: list[pg.InfiniteLine] = []
        for name, color in names_and_colors:
            self.curves[name] = self.plot([], [], pen=pg.mkPen(color, width=1.5), symbol="o", symbolSize=4,
                                          symbolBrush=color, symbolPen=None, name=name)
            self._points[name] = ([], [])

    def add_point(self, name: str, x: float, y: float) -> None:
        """Append (x, y) to the curve ``name``; a point at or before its last x is ignored."""
        xs, ys = self._points[name]
        if xs and x <= xs[-1]:
            return  # the same step reported twice (e.g. the final item): keep the curve monotonic
        xs.append(x)
        ys.append(y)
        self.curves[name].setData(xs, ys)

    def points(self, name: str) -> tuple[list[float], list[float]]:
        """The x and y values of the curve ``name`` (copies)."""
        xs, ys = self._points[name]
        return list(xs), list(ys)

    def last_x(self) -> float:
        """The largest x of any curve (0 when empty)."""
        return max((xs[-1] for xs, _ in self._points.values() if xs), default=0.0)

    def mark_run(self, x: float, label: str) -> None:
        """Draw the dashed line where a new run starts."""
        line = pg.InfiniteLine(pos=x, angle=90, pen=_RUN_PEN, label=label,
                               labelOpts={"position": 0.97, "color": "#909090", "anchors": [(-0.05, 0), (-0.05, 0)]})
        self.addItem(line)
        self.run_lines.append(line)

    def clear_points(self) -> None:
        """Forget every point and run marker."""
        for name, (xs, ys) in self._points.items():
            xs.clear()
            ys.clear()
            self.curves[name].setData([], [])
        for line in self.run_lines:
            self.removeItem(line)
        self.run_lines.clear()


class RunCurves:
    """The loss plot and the validation plot of a panel, on one step axis over consecutive runs.

    Parameters
    ----------
    loss_plot, val_plot
        The two plots; ``val_plot`` follows ``loss_plot``'s x axis.
    """

    def __init__(self, loss_plot: CurvePlot, val_plot: CurvePlot) -> None:
        self.loss_plot, self.val_plot = loss_plot, val_plot
        self.offset = 0.0  # steps of the earlier runs shown
        self.runs = 0
        val_plot.setXLink(loss_plot)
        val_plot.setYRange(0.0, 1.0, padding=0.02)
        val_plot.enableAutoRange(x=False, y=False)
        loss_plot.enableAutoRange(x=False, y=True)
        self.show_up_to(1)

    def new_run(self) -> None:
        """A run starts: its steps continue the axis after the last run's, with a marked boundary."""
        last = max(self.loss_plot.last_x(), self.val_plot.last_x())
        self.runs += 1
        self.offset = last
        if self.runs > 1 and last > 0:
            for plot in (self.loss_plot, self.val_plot):
                plot.mark_run(last, f"run {self.runs}")

    def x(self, step: int) -> float:
        """The axis position of this run's ``step``."""
        return self.offset + step

    def show_up_to(self, x: float) -> None:
        """Show the steps 0..x (both plots: they share the axis)."""
        self.loss_plot.setXRange(0.0, max(float(x), 1.0), padding=0.02)

    def clear(self) -> None:
        """Forget every run."""
        self.loss_plot.clear_points()
        self.val_plot.clear_points()
        self.offset, self.runs = 0.0, 0
        self.show_up_to(1)
