import os

# pytest-qt has no ini option for the Qt platform; without a display the xcb plugin aborts
# the run (shared/TOOLCHAIN.md section 4).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
