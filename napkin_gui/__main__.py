"""python -m napkin_gui: start the desktop app."""
import sys

from napkin_gui.app import main

sys.exit(main())
