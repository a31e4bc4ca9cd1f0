package io.guestdma.block;

/**
 * What a disk device does when its backend fails a request: QEMU's {@code rerror}/{@code werror}
 * ({@code BlockdevOnError}), shared by the device models that sit on the block layer.
 */
public enum ErrorPolicy {
    /** The guest sees the error (the device's error status) and the request completes. */
    REPORT,
    /** The error is swallowed and the request completes as if it had succeeded. */
    IGNORE,
    /**
     * The device stops holding the failed request, as QEMU stops the VM; resuming retries it, so
     * nothing is lost and the guest sees nothing but a slow request.
     */
    STOP
}
