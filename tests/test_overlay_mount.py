"""A real kernel overlayfs mount and unmount through the mounter (root on Linux only)."""

from __future__ import annotations

import os
import sys

import pytest

from host_adapters import StepIO
from host_adapters.overlay import KernelOverlayMounter, mounted_points

needs_root_on_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="mounting overlayfs needs root on Linux",
)


@pytest.fixture
def layers(tmp_path):
    for name in ("top", "bottom", "upper", "work", "merged"):
        (tmp_path / name).mkdir()
    (tmp_path / "top/map.txt").write_text("top wins")
    (tmp_path / "bottom/map.txt").write_text("bottom")
    (tmp_path / "bottom/only-bottom.txt").write_text("seen through")
    yield tmp_path
    mounter = KernelOverlayMounter()
    if mounter.is_mounted(tmp_path / "merged"):
        mounter.unmount(tmp_path / "merged", StepIO())


def _mount(mounter, layers):
    mounter.mount([layers / "top", layers / "bottom"], layers / "upper", layers / "work", layers / "merged", StepIO())


@needs_root_on_linux
def test_mount_stacks_the_first_lowerdir_on_top(layers):
    mounter = KernelOverlayMounter()
    try:
        _mount(mounter, layers)
    except Exception as error:  # a kernel or container without overlayfs
        pytest.skip(f"overlayfs mount not permitted here: {error}")
    assert mounter.is_mounted(layers / "merged")
    assert (layers / "merged/map.txt").read_text() == "top wins"
    assert (layers / "merged/only-bottom.txt").read_text() == "seen through"


@needs_root_on_linux
def test_mount_and_unmount_are_idempotent(layers):
    mounter = KernelOverlayMounter()
    try:
        _mount(mounter, layers)
    except Exception as error:
        pytest.skip(f"overlayfs mount not permitted here: {error}")
    io = StepIO()
    _mount(mounter, layers)
    mounter.mount([layers / "top", layers / "bottom"], layers / "upper", layers / "work", layers / "merged", io)
    assert io.lines == [f"{layers / 'merged'} is already mounted"]
    mounter.unmount(layers / "merged", StepIO())
    assert not mounter.is_mounted(layers / "merged")
    again = StepIO()
    mounter.unmount(layers / "merged", again)
    assert again.lines == [f"{layers / 'merged'} is not mounted"]


@needs_root_on_linux
def test_mounting_over_a_missing_lowerdir_fails_naming_it(layers):
    from host_adapters import HostError

    with pytest.raises(HostError, match="missing"):
        KernelOverlayMounter().mount([layers / "missing"], layers / "upper", layers / "work", layers / "merged", StepIO())


def test_mountinfo_escapes_are_decoded():
    assert mounted_points("36 35 98:0 / /srv/with\\040space rw - ext4 /dev/x rw\n") == {"/srv/with space"}


def test_the_helper_mounter_calls_the_helper_by_instance_name_behind_its_prefix(tmp_path):
    from host_adapters.overlay import HelperMounter

    calls = tmp_path / "calls"
    helper = tmp_path / "left4me-overlay"
    helper.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    helper.chmod(0o755)
    merged = tmp_path / "runtime/alpha/merged"
    table = tmp_path / "mountinfo"
    table.write_text(f"36 35 0:1 / {merged} rw - overlay overlay rw\n")
    mounter = HelperMounter(str(helper), ["env"], mountinfo=str(table))
    mounter.mount([], tmp_path / "upper", tmp_path / "work", merged, StepIO())
    mounter.unmount(merged, StepIO())
    table.write_text("")
    mounter.unmount(merged, StepIO())
    assert calls.read_text().splitlines() == ["mount alpha", "umount alpha"]
