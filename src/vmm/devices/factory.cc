// make_device: DeviceSpec -> the virtio device object.
#include "vmm/devices/virtio/blk.h"
#include "vmm/devices/virtio/net.h"
#include "vmm/devices/virtio/rng.h"
#include "vmm/devices/virtio/vsock.h"
#include "vmm/machine.h"

namespace strata::vmm {

Result<std::shared_ptr<virtio::VirtioDevice>> make_device(const DeviceSpec& spec) {
  switch (spec.kind) {
    case DeviceSpec::kBlock: {
      virtio::BlockConfig bc;
      bc.id = spec.id;
      bc.path = spec.path;
      bc.read_only = spec.read_only;
      bc.flush = spec.flush;
      auto d = virtio::BlockDevice::create(bc);
      if (!d) return std::move(d.error()).context("drive " + spec.id);
      return std::shared_ptr<virtio::VirtioDevice>(*d);
    }
    case DeviceSpec::kRng:
      return std::shared_ptr<virtio::VirtioDevice>(std::make_shared<virtio::RngDevice>(spec.id.empty() ? "rng" : spec.id));
    case DeviceSpec::kNet: {
      virtio::NetConfig nc;
      nc.id = spec.id;
      nc.tap_name = spec.tap;
      if (!spec.mac.empty()) {
        auto mac = virtio::parse_mac(spec.mac);
        if (!mac) return std::move(mac.error()).context("network interface " + spec.id);
        nc.mac = *mac;
      }
      auto d = virtio::NetDevice::create(nc);
      if (!d) return std::move(d.error()).context("network interface " + spec.id);
      return std::shared_ptr<virtio::VirtioDevice>(*d);
    }
    case DeviceSpec::kVsock: {
      virtio::VsockConfig vc;
      vc.id = spec.id.empty() ? "vsock" : spec.id;
      vc.guest_cid = spec.cid;
      vc.uds_path = spec.uds_path;
      auto d = virtio::VsockDevice::create(vc);
      if (!d) return std::move(d.error()).context("vsock");
      return std::shared_ptr<virtio::VirtioDevice>(*d);
    }
  }
  return Error("unknown device kind");
}

}  // namespace strata::vmm
