"""Memory mechanisms, one family per module; core/estimate.py wires them."""
