"""ActiveLab: an emulation lab for distributed active/active data centers."""

__version__ = "0.1.0"
