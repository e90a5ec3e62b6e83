"""ActiveLab: an emulation lab for distributed active/active data centers.

Install with install.sh (system packages, Open vSwitch, .venv); it runs `pip install -e .[test]`.
Mininet comes from the distribution, so .venv is created with --system-site-packages.
"""

from setuptools import find_packages, setup

setup(
    name="activelab",
    version="0.1.0",
    description="Emulation lab for distributed active/active data centers",
    packages=find_packages(include=["lab", "lab.*", "controllers", "controllers.*",
                                    "experiments", "experiments.*"]),
    python_requires=">=3.10",
    install_requires=[
        "os-ken==4.2.2",        # Ryu's maintained fork; its APIs move between releases: pinned
        "scapy==2.6.1",
        "matplotlib==3.9.2",
        "PyYAML==6.0.2",
        "networkx==3.4.2",
        "dnslib==0.9.26",       # the GSLB's authoritative DNS server and its clients
    ],
    extras_require={"test": ["pytest==8.3.4"]},
)
