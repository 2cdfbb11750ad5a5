"""Issue 12 items 1 and 16 as one sweep: every visible combo, label, push button and list item of
the main window shows its whole text at the default window size and at 1280x720. Text may be
elided ('…') only where the widget's tooltip carries the full text.

Measured with the widget's own fontMetrics against the rect Qt draws the text in (the style's
edit field for a combo, SE_PushButtonContents for a button, the item's visual rect for a list
row), so a failure names the widget, its text and the pixels missing.
"""
from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFont, QFontMetrics, QTextDocument
from PySide6.QtWidgets import (QApplication, QComboBox, QLabel, QListWidget, QPushButton,
                               QStyle, QStyleOptionButton, QStyleOptionComboBox, QWidget)

from napkin_gui.core.names import short_gpu_name
from napkin_gui.ui.hardware_table import shown_row
from napkin_gui.ui.main_window import DEFAULT_SIZE
from test_ui_usability import PLAN

SIZES = [DEFAULT_SIZE, (1280, 720)]
ELLIPSIS = "…"


def _plain(text: str) -> str:
    """A label's text as drawn: rich text rendered to plain, a button's '&' mnemonic dropped."""
    if "<" in text:  # Qt.mightBeRichText is not bound in PySide6
        doc = QTextDocument()
        doc.setHtml(text)
        return doc.toPlainText()
    return text


def _name(widget: QWidget) -> str:
    chain, w = [], widget
    while w is not None and len(chain) < 4:
        chain.append(w.objectName() or type(w).__name__)
        w = w.parentWidget()
    return "/".join(reversed(chain))


def _elided_ok(widget: QWidget, shown: str, full: str) -> bool:
    """An elided text is fine when the widget's tooltip carries the whole of it."""
    return shown.endswith(ELLIPSIS) and full in widget.toolTip()


def _label_problem(label: QLabel) -> str | None:
    text = label.text()
    if not text or label.pixmap() is not None and not label.pixmap().isNull():
        return None
    rect = label.contentsRect().adjusted(label.margin(), label.margin(), -label.margin(), -label.margin())
    if label.wordWrap():  # wraps: the text must fit in the height the layout gave it
        need = label.heightForWidth(label.width())
        if need > label.height():
            return f"{need - label.height()} px too short for its wrapped text"
        return None
    need = label.sizeHint().width() - 2 * label.margin() - (label.width() - label.contentsRect().width())
    if need > rect.width() and not _elided_ok(label, text, getattr(label, "full_text", text)):
        return f"{need - rect.width()} px too narrow"
    full = getattr(label, "full_text", None)
    if full is not None and label.text() != full and not _elided_ok(label, label.text(), full):
        return "elided without its full text in the tooltip"
    return None


def _combo_problem(combo: QComboBox) -> str | None:
    text = combo.currentText()
    if not text:
        return None
    if combo.isEditable() and combo.lineEdit() is not None:
        line = combo.lineEdit()
        room = line.contentsRect().width() - 4  # QLineEdit's horizontal text margin, 2 px a side
        font = line.fontMetrics()
    else:
        opt = QStyleOptionComboBox()
        combo.initStyleOption(opt)
        room = combo.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                            QStyle.SubControl.SC_ComboBoxEditField, combo).width() - 2
        font = combo.fontMetrics()
    need = font.horizontalAdvance(text)
    if need > room:  # a combo never elides: what does not fit is cut
        return f"{need - room} px too narrow"
    return None


def _button_problem(button: QPushButton) -> str | None:
    text = button.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
    if not text:
        return None
    opt = QStyleOptionButton()
    button.initStyleOption(opt)
    rect = button.style().subElementRect(QStyle.SubElement.SE_PushButtonContents, opt, button)
    room = rect.width()
    if button.menu() is not None:
        room -= button.style().pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, opt, button)
    if not button.icon().isNull():
        room -= button.iconSize().width() + 4
    need = button.fontMetrics().horizontalAdvance(text)
    return f"{need - room} px too narrow" if need > room else None


def _list_problems(view: QListWidget) -> list[str]:
    """Rows whose text (wrapped when the list wraps) does not fit the rect the row is drawn in."""
    out = []
    viewport = view.viewport().rect()
    for row in range(view.count()):
        item = view.item(row)
        rect = view.visualItemRect(item)
        if not rect.isValid() or not rect.intersects(viewport):
            continue
        text = item.text()
        metrics = view.fontMetrics()
        inner = rect.adjusted(3, 0, -3, 0)  # the delegate's text margin (QStyle PM_FocusFrameHMargin + 1)
        flags = Qt.TextFlag.TextWordWrap if view.wordWrap() else Qt.TextFlag.TextSingleLine
        need = metrics.boundingRect(QRect(0, 0, inner.width(), 100_000), int(flags), text)
        if need.height() > rect.height() or need.width() > inner.width():
            if not (text.endswith(ELLIPSIS) and item.toolTip()):
                out.append(f"row {row} {text[:40]!r}: needs {need.width()}x{need.height()}, "
                           f"drawn in {inner.width()}x{rect.height()}")
        if rect.right() > viewport.right() + 1 and view.horizontalScrollBarPolicy() == \
                Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
            out.append(f"row {row} {text[:40]!r}: runs {rect.right() - viewport.right()} px past the list")
    return out


def clipped(window: QWidget) -> list[str]:
    """'widget: what is cut' for every visible text widget of window that does not show its text."""
    found = []
    for widget in window.findChildren(QWidget):
        if not widget.isVisibleTo(window) or widget.width() <= 0:
            continue
        if isinstance(widget, QComboBox):
            problem = _combo_problem(widget)
        elif isinstance(widget, QLabel):
            problem = _label_problem(widget)
        elif isinstance(widget, QPushButton):
            problem = _button_problem(widget)
        elif isinstance(widget, QListWidget):
            found += [f"{_name(widget)}: {p}" for p in _list_problems(widget)]
            continue
        else:
            continue
        if problem:
            text = widget.currentText() if isinstance(widget, QComboBox) else _plain(widget.text())
            found.append(f"{_name(widget)} {text[:60]!r}: {problem}")
    return found


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("tab", [0, 1, 2, 3])
def test_no_visible_text_is_cut(open_window, size, tab):
    window = open_window(PLAN, size=size)
    window.tabs.setCurrentIndex(tab)
    QApplication.processEvents()
    assert clipped(window) == []


def test_the_sweep_sees_a_cut_combo_and_an_elided_label(open_window):
    """The checks above can fail: a combo squeezed below its text and a label elided without a
    tooltip are both reported."""
    window = open_window(PLAN, size=DEFAULT_SIZE)
    combo = window.editor.gpu_combo
    combo.setMinimumWidth(0)
    combo.setMinimumContentsLength(1)
    combo.setFixedWidth(60)
    label = QLabel("x" * 400, window.editor)
    label.setObjectName("too-long")
    label.setFixedWidth(50)
    label.show()
    QApplication.processEvents()
    problems = clipped(window)
    assert any("too narrow" in p and "H100" in p for p in problems), problems
    assert any("too-long" in p for p in problems), problems


def test_model_field_shows_the_id_and_its_tooltip_the_whole_label(open_window):
    """The model field at 1280x720 cut 'llama-3.1-8b  ·  Llama 3.1 8' (15 px short); it now reads
    the id, the popup and the field's tooltip the whole label."""
    window = open_window(PLAN, size=(1280, 720))
    combo = window.editor.model_combo
    assert combo.currentText() == "llama-3.1-8b"
    assert combo.lineEdit().toolTip() == f"{combo.itemText(combo.findData('llama-3.1-8b'))}\n{combo.toolTip()}"
    assert "Llama 3.1 8B" in combo.lineEdit().toolTip()
    index = combo.findData("deepseek-v2-lite")  # the longest label in the presets
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    window.controller.flush()
    assert window.controller.plan.model == "deepseek-v2-lite" and combo.currentText() == "deepseek-v2-lite"
    assert _combo_problem(combo) is None


def test_hardware_table_names_tell_the_cards_apart(open_window):
    """'AMD Instinct …' for both MI300X and MI325X at 1280x720: the GPU column drops the maker's
    words (names.short_gpu_name) and keeps a width every card's name fits in (it stretched
    and shrank to ~100 px); the cheapest / fastest tag after the name is in the tooltip too."""
    window = open_window(PLAN, size=(1280, 720))
    table = window.hardware_table
    window.tabs.setCurrentWidget(table)
    window.controller.flush()
    QApplication.processEvents()
    names = {short_gpu_name(row.gpu_name) for row in table.model.rows}
    assert {"MI300X", "MI325X"} <= names and len(names) > 20, sorted(names)
    assert all(table.model.row_text(row)[0].startswith(short_gpu_name(row.gpu_name)) for row in table.model.rows)
    width = table.view.horizontalHeader().sectionSize(0)
    metrics = table.view.fontMetrics()
    bold = QFont(table.view.font())
    bold.setBold(True)  # the cheapest and the fastest rows are bold
    cut = [n for n in names if QFontMetrics(bold).horizontalAdvance(n) + 8 > width]
    assert cut == [] and metrics.horizontalAdvance("MI325X") < width, (cut, width)
    cheapest = next(row for row in table.model.rows if row.cheapest)
    assert "cheapest" in shown_row(cheapest).tooltip


@pytest.mark.parametrize("size", [(1280, 720), DEFAULT_SIZE, (1920, 1080)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_hardware_columns_fill_a_wide_table_and_scroll_in_a_narrow_one(open_window, size):
    """The GPU column takes the room the others leave (never under its set width), so no column
    is cut by the vertical scroll bar and a wide window shows no empty band."""
    from napkin_gui.ui.hardware_table import COLUMN_WIDTHS
    window = open_window(PLAN, size=size)
    table = window.hardware_table
    window.tabs.setCurrentWidget(table)
    window.controller.flush()
    QApplication.processEvents()
    header = table.view.horizontalHeader()
    total = sum(header.sectionSize(c) for c in range(header.count()))
    room = table.view.viewport().width()
    assert header.sectionSize(0) >= COLUMN_WIDTHS[0]
    if header.sectionSize(0) > COLUMN_WIDTHS[0]:  # wide: the columns fill the table exactly
        assert total == room, (total, room)
    else:                                          # narrow: it scrolls to the last column
        assert total > room and table.view.horizontalScrollBar().maximum() > 0


def _axis_label_problems(name: str, plot) -> list[str]:
    """A pyqtgraph axis label is drawn centred on its axis and may run past it; what runs past
    the view showing it is cut."""
    out = []
    view = plot.scene().views()[0]
    # QGraphicsTextItem's document margin (4 px) is blank: it may lie outside
    shown = view.mapToScene(view.viewport().rect()).boundingRect().adjusted(-4, -4, 4, 4)
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        if not axis.isVisible() or not axis.label.isVisible() or not axis.labelText:
            continue
        drawn = axis.label.sceneBoundingRect()
        if not shown.contains(drawn):
            out.append(f"{name} {side} {axis.labelText!r}: drawn at {drawn.getRect()}, the view shows {shown.getRect()}")
    return out


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_time_curve_axis_labels_fit_their_axes(open_window, size):
    """'ms per micro-batch' was cut to 'ms per micro-batcl' on both step plots at 1280x720."""
    window = open_window(PLAN, size=size)
    window.tabs.setCurrentWidget(window.time_view)
    window.controller.flush()
    QApplication.processEvents()
    problems = [p for key, curve in window.time_view.plots.items()
                if curve.item.isVisible() for p in _axis_label_problems(str(key), curve.item)]
    assert problems == []


def _overlapping_tick_labels(axis) -> list[tuple[str, str]]:
    from drawn_text import axis_texts
    texts = axis_texts(axis)
    return [(a[2], b[2]) for i, a in enumerate(texts) for b in texts[i + 1:] if a[0].intersects(b[0])]


def test_best_plans_scatter_ticks_never_pile_up_and_rows_name_the_card(open_window):
    """At 1280x720 the cost axis read '8·10¹ 7·10¹ 6·10¹ 5·10¹' on top of each other (pyqtgraph
    labels every 2..9 of a short log range), and each row named its card by id ('h100-80gb-sxm')."""
    window = open_window(PLAN, size=(1280, 720), tab="best_plans_view")
    window.best_plans.flush()
    QApplication.processEvents()
    view = window.best_plans_view
    assert view.model.rowCount() > 0
    item = view.plot.getPlotItem()
    for side in ("left", "bottom"):
        assert _overlapping_tick_labels(item.getAxis(side)) == [], side
    cells = [view.model.data(view.model.index(r, 1)) for r in range(view.model.rowCount())]
    assert all("H100 80GB SXM5" in c and "h100-80gb-sxm" not in c for c in cells), cells
