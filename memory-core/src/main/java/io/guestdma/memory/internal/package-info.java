/**
 * Linux system calls reached through the Foreign Function &amp; Memory API: the few that the JDK does
 * not expose (mmap with MAP_NORESERVE, memfd_create, madvise, preadv/pwritev, fallocate, flock, and
 * sockets driven by file descriptor). Internal: exported only to {@code io.guestdma.block}. Every
 * failure is a {@link io.guestdma.memory.posix.PosixException} naming the call and errno.
 */
package io.guestdma.memory.internal;
