"""Matplotlib set up once (Agg, no display), byte-stable saving and the training-curve panel that
every training figure shares."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (jobs have no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, png_path, svg: bool = True, dpi: int = 130) -> None:
    """The figure as ``png_path`` (and an SVG beside it, without a date and with fixed element ids:
    the same bytes each run); the figure is closed."""
    plt = pyplot()
    png_path = Path(png_path)
    for path in [png_path] + ([png_path.with_suffix(".svg")] if svg else []):
        with plt.rc_context({"svg.hashsalt": png_path.stem}):
            fig.savefig(path, dpi=dpi, bbox_inches="tight",
                        metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)


def training_panel(axis, epochs, loss, loss_label: str, score, score_label: str, title: str) -> None:
    """Training loss (left axis) and a validation score in [0, 1] (right axis) per epoch; the legend
    below the panel, where it covers no curve."""
    from matplotlib.ticker import MaxNLocator

    axis.plot(epochs, loss, color="tab:red", marker=".", label=loss_label)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    twin = axis.twinx()
    twin.plot(epochs, score, color="tab:blue", marker=".", label=score_label)
    twin.set_ylabel("validation score")
    twin.set_ylim(0, 1)
    axis.set_title(title)
    lines = axis.get_lines() + twin.get_lines()
    axis.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.18),
                ncol=2, fontsize="small", frameon=False)
