"""PDF plan reports: Estimate -> HTML (QTextDocument) + QPainter charts -> QPdfWriter.

Kept import-free; use napkin_gui.report.pdf.write_report or the `napkin report` command.
"""
