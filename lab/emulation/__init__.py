"""The running network: Mininet/Open vSwitch build and exact teardown, link shaping and the
delay line's driver, the static L2 fabric, the ledger, the controller process, firewalls,
platform checks, traffic helpers and probe-stream orchestration."""
