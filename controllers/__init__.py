"""ActiveLab's SDN controller: pure decision logic (logic.py) behind a thin os-ken adapter (app.py)."""
