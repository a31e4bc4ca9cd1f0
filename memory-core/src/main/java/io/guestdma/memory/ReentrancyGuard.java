package io.guestdma.memory;

import java.util.concurrent.atomic.AtomicLong;

/**
 * One device's guard against re-entrant access, QEMU 8.0's {@code MemReentrancyGuard}: while a
 * thread is inside the device (a register access, or the device's own DMA), another access to the
 * same device on that thread is refused instead of being nested inside the first.
 *
 * <p>Why: a device that DMAs into memory may reach an MMIO region, and that region's handler may
 * (directly, or through yet another device) access the first device's registers again, for example
 * clearing START and issuing a new command in the middle of the transfer that is still running. A
 * nested command would reuse the state the outer one is working on (its scatter-gather list, its
 * mapped chunk); QEMU had a family of CVEs of this shape (CVE-2021-3409, CVE-2021-3416 and others).
 * Refusing the nested access keeps the device consistent; it is reported once per guard.
 *
 * <p>Give a device one guard, enter it around every register access and around the work its DMA
 * does on the calling thread, and give it to {@link MmioRegion}s of the device's registers so that
 * {@link GuestMemory} refuses DMA that lands on them ({@link AccessResult#DEVICE_ERROR}):
 *
 * <pre>{@code
 * if (!guard.enter()) {            // re-entered from our own DMA: refuse
 *     guard.refuse("write of register " + offset);
 *     return;
 * }
 * try { ... } finally { guard.exit(); }
 * }</pre>
 *
 * <p>The guard is per thread: accesses from different threads (two vCPUs, an I/O thread) are not
 * re-entrant and are serialised by the device's own locks as usual. Thread-safe.
 */
public final class ReentrancyGuard {
    private final String device;
    private final ThreadLocal<Boolean> engaged = ThreadLocal.withInitial(() -> Boolean.FALSE);
    private final AtomicLong refusals = new AtomicLong();

    /**
     * Creates a guard for one device, engaged on no thread.
     *
     * @param device the device's name, used in the report of a refused access
     * @throws NullPointerException if device is null
     */
    public ReentrancyGuard(String device) {
        this.device = java.util.Objects.requireNonNull(device, "device");
    }

    /**
     * Engages the guard for the calling thread.
     *
     * @return true if the thread was not inside the device and now is (call {@link #exit()} when
     *         done); false if the thread is already inside it, in which case nothing changed
     */
    public boolean enter() {
        if (engaged.get()) {
            return false;
        }
        engaged.set(Boolean.TRUE);
        return true;
    }

    /** Releases the guard for the calling thread; call once after each {@link #enter()} that returned true. */
    public void exit() {
        engaged.set(Boolean.FALSE);
    }

    /** {@return whether the calling thread is inside the device} */
    public boolean isEngaged() {
        return engaged.get();
    }

    /**
     * Records a refused re-entrant access. The first refusal is logged as a warning (QEMU's
     * {@code warn_report_once}); all are counted.
     *
     * @param access what was refused, for the log (e.g. "write of 0x1f7")
     */
    public void refuse(String access) {
        if (refusals.getAndIncrement() == 0) {
            System.getLogger(ReentrancyGuard.class.getName()).log(System.Logger.Level.WARNING,
                    "blocked re-entrant access to device " + device + ": " + access
                            + " (further ones are counted, not logged)");
        }
    }

    /** {@return how many re-entrant accesses were refused} */
    public long refusals() {
        return refusals.get();
    }

    /** {@return the device's name} */
    public String device() {
        return device;
    }

    @Override
    public String toString() {
        return "ReentrancyGuard[" + device + ", " + refusals.get() + " refused]";
    }
}
