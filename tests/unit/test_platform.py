"""Which datapath auto picks, pinned by the environment; which CPU times are judged."""

import pytest

from lab.emulation import probe
from lab.errors import LabError


@pytest.fixture
def kernel_machine(monkeypatch):
    """A machine with the openvswitch module and netem, no pins, no accelerator set."""
    monkeypatch.setattr(probe, "has_kernel_datapath", lambda: True)
    monkeypatch.setattr(probe, "has_netem", lambda: True)
    for var in ("ACTIVELAB_DATAPATH", "ACTIVELAB_DELAY_METHOD", "ACTIVELAB_ACCEL"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_auto_is_the_kernel_path_where_the_kernel_has_it(kernel_machine):
    chosen = probe.choose_platform()
    assert (chosen.datapath, chosen.delay_method) == ("kernel", "netem")


def test_the_environment_pins_what_auto_means_and_says_so(kernel_machine):
    kernel_machine.setenv("ACTIVELAB_DATAPATH", "user")
    kernel_machine.setenv("ACTIVELAB_DELAY_METHOD", "delayline")
    chosen = probe.choose_platform()
    assert (chosen.datapath, chosen.delay_method) == ("user", "delayline")
    assert chosen.datapath_reason == "ACTIVELAB_DATAPATH=user"
    assert chosen.delay_reason == "ACTIVELAB_DELAY_METHOD=delayline"
    # an explicit option wins over the pin
    assert probe.choose_platform("kernel", "netem").datapath == "kernel"


def test_a_bad_pin_is_one_error_naming_the_variable(kernel_machine):
    kernel_machine.setenv("ACTIVELAB_DATAPATH", "kernal")
    with pytest.raises(LabError, match="ACTIVELAB_DATAPATH=kernal: not a choice; use kernel or user"):
        probe.choose_platform()


def test_a_pin_to_what_the_kernel_lacks_names_the_variable(kernel_machine):
    kernel_machine.setattr(probe, "has_kernel_datapath", lambda: False)
    kernel_machine.setenv("ACTIVELAB_DATAPATH", "kernel")
    with pytest.raises(LabError, match="ACTIVELAB_DATAPATH=kernel: this kernel has no openvswitch"):
        probe.choose_platform()


def test_timing_is_judged_except_on_an_emulated_cpu(kernel_machine, tmp_path):
    kernel_machine.setenv("ACTIVELAB_ACCEL", "tcg")
    assert probe.timing_judged() == (False, "QEMU TCG (instructions emulated, not virtualized)")
    kernel_machine.setenv("ACTIVELAB_ACCEL", "kvm")
    assert probe.timing_judged() == (True, "")


def test_bfd_is_paced_only_on_an_emulated_cpu(kernel_machine):
    kernel_machine.setenv("ACTIVELAB_ACCEL", "tcg")
    assert probe.paced_bfd_ms(30) == 300 and probe.paced_bfd_ms(1000) == 1000
    assert probe.patience(30) == 150
    kernel_machine.setenv("ACTIVELAB_ACCEL", "kvm")
    assert probe.paced_bfd_ms(30) == 30 and probe.patience(30) == 30


def test_a_tcg_cpu_is_recognised_from_cpuinfo(kernel_machine, monkeypatch):
    import builtins
    real_open = builtins.open
    models = {"tcg": "model name\t: QEMU TCG CPU version 2.5+\n",
              "real": "model name\t: AMD EPYC 7B13\n"}

    def fake(model):
        def opener(path, *args, **kwargs):
            if path == "/proc/cpuinfo":
                import io
                return io.StringIO("processor\t: 0\n" + models[model])
            return real_open(path, *args, **kwargs)
        return opener
    monkeypatch.setattr(builtins, "open", fake("tcg"))
    assert probe.accelerator() == "tcg" and probe.timing_judged()[0] is False
    monkeypatch.setattr(builtins, "open", fake("real"))
    assert probe.accelerator() is None and probe.timing_judged() == (True, "")


def test_timing_verdicts_fail_a_run_unless_time_is_not_judged():
    from lab.experiment import Summary
    from lab.run import EXIT_OK, EXIT_VERDICT, verdict, warnings
    slow = Summary("table", ok=True, problems=[], timing=["link dci-a: rtt off (9.1 vs 10 ±0.5)"])
    lines, code = verdict(slow, True, "")
    assert code == EXIT_VERDICT and lines[-1] == "verdict: FAILED (1): link dci-a: rtt off (9.1 vs 10 ±0.5)"
    lines, code = verdict(slow, False, "QEMU TCG")
    assert code == EXIT_OK
    assert lines == ["timing, not judged on QEMU TCG (1): link dci-a: rtt off (9.1 vs 10 ±0.5)",
                     "verdict: every functional check passed (timing not judged on QEMU TCG)"]
    assert warnings(slow, False, "QEMU TCG") == [
        "warning: link dci-a: rtt off (9.1 vs 10 ±0.5) (timing, not judged on QEMU TCG)"]
    # a functional failure fails the run on an emulated CPU too, timing listed beside it
    broken = Summary("table", ok=False, problems=["fault cut dci-a: c1->vip did not recover"],
                     timing=slow.timing)
    lines, code = verdict(broken, False, "QEMU TCG")
    assert code == EXIT_VERDICT and lines[-1] == ("verdict: FAILED (1): fault cut dci-a: c1->vip "
                                                  "did not recover")
    assert verdict(Summary("t", ok=True, problems=[]), True, "") == (
        ["verdict: every check passed"], EXIT_OK)
