/**
 * Operating-system errors as the library reports them: {@link io.guestdma.memory.posix.PosixException}
 * names the failed call (and the image or socket) and carries the {@link io.guestdma.memory.posix.Errno}
 * value, so a device can map it to the error its guest sees (ENOSPC, EIO). The system calls
 * themselves are not public API.
 */
package io.guestdma.memory.posix;
