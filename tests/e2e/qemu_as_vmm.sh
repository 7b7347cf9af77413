#!/usr/bin/env bash
# qemu_as_vmm.sh: a Firecracker-compatible monitor made of QEMU, for tests. `strata vm` runs
# the monitor named by $STRATA_VMM with Firecracker's `--api-sock S --id N --config-file F`;
# this script reads F (Firecracker's JSON layout) and boots the same kernel, initrd, command
# line and drives under `qemu-system-x86_64 -M microvm -accel tcg` (software emulation: a full
# Linux boot cannot run under this host's KVM, ENVIRONMENT.md). The API socket is not served
# (`strata vm run` in the foreground does not use it); vsock is not offered (QEMU needs
# /dev/vhost-vsock, absent here), so strata-init's report comes on the console.
set -euo pipefail
config=""
while (($#)); do
  case $1 in
    --config-file) config=$2; shift 2 ;;
    --api-sock | --id | --log-path | --level | --metrics-path) shift 2 ;;
    *) echo "qemu_as_vmm: unknown argument $1" >&2; exit 153 ;;
  esac
done
[[ -n $config ]] || { echo "qemu_as_vmm: --config-file is required" >&2; exit 153; }
j() { jq -r "$1" "$config"; }
args=(-M microvm,acpi=off -accel tcg -cpu max -nographic -no-reboot
  -m "$(j '."machine-config".mem_size_mib')" -smp "$(j '."machine-config".vcpu_count')"
  -kernel "$(j '."boot-source".kernel_image_path')")
initrd=$(j '."boot-source".initrd_path // empty')
[[ -n $initrd ]] && args+=(-initrd "$initrd")
n=$(j '.drives | length')
for ((i = 0; i < n; i++)); do
  ro=$(j ".drives[$i].is_read_only")
  args+=(-drive "id=d$i,file=$(j ".drives[$i].path_on_host"),format=raw,if=none,readonly=$([[ $ro == true ]] && echo on || echo off)"
    -device "virtio-blk-device,drive=d$i")
done
# microvm has no HPET or PM timer to calibrate the TSC against: give its rate and the delay loop;
# reboot=t: strata-init ends the VM with a reset, which -no-reboot turns into QEMU's exit.
append="$(j '."boot-source".boot_args') tsc_early_khz=2000000 lpj=4000000 reboot=t"
exec qemu-system-x86_64 "${args[@]}" -append "$append" </dev/null
