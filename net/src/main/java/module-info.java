/**
 * Network backends for NIC device models: where a guest's frames go when the NIC transmits and
 * where the frames it receives come from. {@code NetBackend} is the device-facing interface;
 * {@code StreamNetBackend} speaks QEMU's socket/stream netdev framing, so a guestdma NIC and a QEMU
 * VM's NIC can be wired together; {@code LoopbackNetBackend} loops frames back and captures or
 * replays them as pcap files. Received frames wait in a bounded {@code RxQueue} until the guest
 * has posted buffers for them.
 */
module io.guestdma.net {
    requires transitive io.guestdma.memory;
    exports io.guestdma.net;
}
