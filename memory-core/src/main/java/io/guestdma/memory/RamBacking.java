package io.guestdma.memory;

import io.guestdma.memory.posix.Errno;
import io.guestdma.memory.internal.Posix;
import io.guestdma.memory.posix.PosixException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The host memory behind guest RAM and ROM: one contiguous block mapped with {@code mmap(2)}, out
 * of which a {@link GuestMemory} carves RAM and ROM regions (QEMU's RAM blocks, rust-vmm's
 * {@code GuestRegionMmap}). Pages are committed by the kernel on first touch, never up front,
 * which is what lets a large guest start instantly.
 *
 * <p>An address space has one default backing (its arena, {@link GuestMemory.Builder#backing}),
 * and any RAM or ROM region may instead bring its own ({@link RamRegion#backing()}): a hot-plugged
 * DIMM, or guest RAM that another process shares with us. Either way the {@link GuestMemory} owns
 * the backing once it uses it and closes it itself (see {@link #close()}); a backing serves one
 * address space only.
 *
 * <p>Five kinds:
 * <ul>
 *   <li>{@link #anonymous(long)}: private anonymous memory, the default.</li>
 *   <li>{@link #reserved(long)}: anonymous with {@code MAP_NORESERVE}, so no swap is reserved
 *       either, for guests larger than the host could commit at once (a 16 GiB guest on a small
 *       machine). Touching more than the host can back fails the way an overcommitted host does.</li>
 *   <li>{@link #sharedFile(Path, long)}: {@code MAP_SHARED} over a file (for example on
 *       {@code /dev/shm} or hugetlbfs), so that another process can map the same RAM, as
 *       vhost-user back ends do.</li>
 *   <li>{@link #memfd(String, long)}: {@code MAP_SHARED} over a {@code memfd_create} file whose
 *       descriptor is kept open for passing to another process, as crosvm does.</li>
 *   <li>{@link #sharedFd(int, long, long, boolean)}: {@code MAP_SHARED} over a descriptor someone
 *       else opened, at an offset: the RAM a VMM hands a vhost-user back end
 *       ({@code SET_MEM_TABLE}), checked against the file's size and access mode first.</li>
 * </ul>
 *
 * <p>The segment belongs to a shared arena owned by this backing: after {@link #close()} the
 * memory is unmapped and every access through the segment (or any slice of it) throws
 * {@link IllegalStateException} instead of touching freed memory. Contents start as zero (or as
 * the file's contents for file-backed kinds).
 *
 * <p>Thread-safe: the segment may be used from any thread; {@code close} is idempotent.
 */
public final class RamBacking implements AutoCloseable {
    /** How the memory was obtained. */
    public enum Kind {
        /** Private anonymous memory. */
        ANONYMOUS,
        /** Private anonymous memory mapped with {@code MAP_NORESERVE}. */
        RESERVED,
        /** Shared mapping of a file on a file system. */
        SHARED_FILE,
        /** Shared mapping of a {@code memfd_create} file. */
        MEMFD,
        /** Shared mapping of a descriptor given by the caller (another process's memory). */
        SHARED_FD
    }

    private final Kind kind;
    private final Arena arena;
    private final MemorySegment segment;
    private final int fd;
    private final Path file;
    private final boolean writable;
    private final AtomicBoolean closed = new AtomicBoolean();
    /** The address space that uses this backing; a second one is refused. */
    private final AtomicReference<Object> owner = new AtomicReference<>();

    private RamBacking(Kind kind, Arena arena, MemorySegment segment, int fd, Path file) {
        this(kind, arena, segment, fd, file, true);
    }

    private RamBacking(Kind kind, Arena arena, MemorySegment segment, int fd, Path file, boolean writable) {
        this.kind = kind;
        this.arena = arena;
        this.segment = writable ? segment : segment.asReadOnly();
        this.fd = fd;
        this.file = file;
        this.writable = writable;
    }

    /**
     * Maps private anonymous memory, committed page by page as the guest touches it.
     *
     * @param size bytes; rounded up to a whole number of pages
     * @return the backing
     * @throws IllegalArgumentException if {@code size} is not positive
     * @throws UncheckedIOException     wrapping a {@link PosixException} if the kernel refuses the
     *                                  mapping (ENOMEM: over the overcommit limit)
     */
    public static RamBacking anonymous(long size) {
        return anonymousMapping(Kind.ANONYMOUS, size, 0);
    }

    /**
     * Maps private anonymous memory with {@code MAP_NORESERVE}: nothing, not even swap space, is
     * reserved, so any size the address space can hold maps instantly and only touched pages ever
     * cost memory.
     *
     * @param size bytes; rounded up to a whole number of pages
     * @return the backing
     * @throws IllegalArgumentException if {@code size} is not positive
     * @throws UncheckedIOException     wrapping a {@link PosixException} if the kernel refuses the mapping
     */
    public static RamBacking reserved(long size) {
        return anonymousMapping(Kind.RESERVED, size, Posix.MAP_NORESERVE);
    }

    private static RamBacking anonymousMapping(Kind kind, long size, int extraFlags) {
        long bytes = roundToPages(size);
        Arena arena = Arena.ofShared();
        try {
            MemorySegment address = Posix.mmap(bytes, Posix.PROT_READ | Posix.PROT_WRITE,
                    Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS | extraFlags, -1, 0);
            return new RamBacking(kind, arena, attach(address, bytes, arena), -1, null);
        } catch (PosixException e) {
            arena.close();
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Maps a file shared: guest RAM lives in the file, and every process that maps it sees the same
     * bytes. The file is created (mode 0600) if missing and extended (sparsely) to {@code size} if
     * shorter; a longer file keeps its length and only its first {@code size} bytes are mapped.
     *
     * @param file the file, typically on {@code /dev/shm} or a hugetlbfs mount
     * @param size bytes; rounded up to a whole number of pages
     * @return the backing; the file stays after {@link #close()}
     * @throws IllegalArgumentException if {@code size} is not positive
     * @throws PosixException           naming the failed call if the file cannot be opened,
     *                                  extended or mapped (for example EACCES, EISDIR, ENOSPC)
     */
    public static RamBacking sharedFile(Path file, long size) throws IOException {
        Objects.requireNonNull(file, "file");
        long bytes = roundToPages(size);
        int fd = Posix.open(file, Posix.O_RDWR | Posix.O_CREAT, 0600);
        try {
            if (Posix.fileSize(fd) < bytes) {
                Posix.ftruncate(fd, bytes);
            }
            RamBacking backing = sharedMapping(Kind.SHARED_FILE, fd, bytes, file);
            // The mapping keeps the file referenced; the descriptor is no longer needed.
            Posix.close(fd);
            return backing;
        } catch (IOException | RuntimeException e) {
            closeQuietly(fd, e);
            throw e;
        }
    }

    /**
     * Maps a new {@code memfd_create} file shared. Its descriptor stays open (see {@link #fd()})
     * so it can be handed to another process (over a Unix socket, or as {@code /proc/PID/fd/N});
     * {@link #close()} closes it.
     *
     * @param name a name for debugging, shown in {@code /proc/PID/fd}
     * @param size bytes; rounded up to a whole number of pages
     * @return the backing
     * @throws IllegalArgumentException if {@code size} is not positive
     * @throws PosixException           naming the failed call if the memfd cannot be created,
     *                                  sized or mapped
     */
    public static RamBacking memfd(String name, long size) throws IOException {
        Objects.requireNonNull(name, "name");
        long bytes = roundToPages(size);
        int fd = Posix.memfdCreate(name, 0);
        try {
            Posix.ftruncate(fd, bytes);
            return sharedMapping(Kind.MEMFD, fd, bytes, null);
        } catch (IOException | RuntimeException e) {
            closeQuietly(fd, e);
            throw e;
        }
    }

    /**
     * Maps {@code size} bytes of a descriptor opened by someone else, from {@code offset} on,
     * {@code MAP_SHARED}: what a vhost-user back end does with each region of a VMM's memory table
     * (the descriptor arrived over a Unix socket, the offset is the region's {@code mmap_offset}).
     * The descriptor is only borrowed: the mapping holds its own reference to the file, so the
     * caller may close the descriptor as soon as this returns, and {@link #close()} leaves it alone.
     *
     * <p>A VMM is not trusted, so the descriptor is checked before anything is mapped: it must be
     * open, refer to a regular file (a memfd, a file on {@code /dev/shm} or hugetlbfs), be open for
     * reading, and for writing when {@code writable}, and the file must hold the whole range
     * (mapping past its end would turn the guest's accesses into SIGBUS).
     *
     * @param fd       an open descriptor, borrowed
     * @param offset   where in the file the memory starts, at least 0; need not be page-aligned
     *                 (the mapping then starts at the page below and is sliced)
     * @param size     bytes, positive and a multiple of the page size
     * @param writable whether the memory may be written (RAM); false maps it read-only, for ROM
     * @return the backing, of kind {@link Kind#SHARED_FD}
     * @throws IllegalArgumentException if the size is not a positive multiple of the page size, the
     *                                  offset is negative, the range runs past the end of the file,
     *                                  the descriptor is not a regular file, or its access mode
     *                                  does not allow the mapping (read-only for writable memory,
     *                                  write-only for any)
     * @throws IOException              if the descriptor is not open, or if {@code mmap} fails
     *                                  ({@link PosixException} naming the call, e.g. EINVAL for an
     *                                  offset that is not aligned to a hugetlbfs page)
     */
    public static RamBacking sharedFd(int fd, long offset, long size, boolean writable) throws IOException {
        long page = Posix.pageSize();
        if (size <= 0 || size % page != 0) {
            throw new IllegalArgumentException(String.format(
                    "fd %d: size 0x%x is not a positive multiple of the page size (0x%x)", fd, size, page));
        }
        if (offset < 0 || offset + size < 0) {
            throw new IllegalArgumentException(String.format("fd %d: offset 0x%x is out of range", fd, offset));
        }
        if (fd < 0) {
            throw new IllegalArgumentException("fd " + fd + " is not a descriptor");
        }
        int access = Posix.statusFlags(fd) & Posix.O_ACCMODE; // EBADF if it is not open
        if (access == Posix.O_WRONLY) {
            throw new IllegalArgumentException("fd " + fd + " is open write-only: memory cannot be mapped from it");
        }
        if (writable && access != Posix.O_RDWR) {
            throw new IllegalArgumentException("fd " + fd + " is open read-only: it can back ROM (writable=false),"
                    + " not RAM");
        }
        java.nio.file.attribute.BasicFileAttributes attributes;
        try {
            // Through /proc the kernel follows the descriptor to its file, memfds included.
            attributes = java.nio.file.Files.readAttributes(Path.of("/proc/self/fd/" + fd),
                    java.nio.file.attribute.BasicFileAttributes.class);
        } catch (IOException e) {
            throw new IOException("fd " + fd + ": cannot read its file's attributes", e);
        }
        if (!attributes.isRegularFile()) {
            throw new IllegalArgumentException("fd " + fd + " is not a regular file (a memfd, or a file on /dev/shm"
                    + " or hugetlbfs): memory cannot be mapped from it");
        }
        if (offset + size > attributes.size()) {
            throw new IllegalArgumentException(String.format("fd %d: bytes [0x%x, 0x%x) run past the end of the"
                    + " file (0x%x bytes)", fd, offset, offset + size, attributes.size()));
        }
        long start = offset & -page;
        long mapped = offset - start + size;
        Arena arena = Arena.ofShared();
        try {
            MemorySegment address = Posix.mmap(mapped, Posix.PROT_READ | (writable ? Posix.PROT_WRITE : 0),
                    Posix.MAP_SHARED, fd, start);
            MemorySegment whole = attach(address, mapped, arena);
            return new RamBacking(Kind.SHARED_FD, arena, whole.asSlice(offset - start, size), -1, null, writable);
        } catch (PosixException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static RamBacking sharedMapping(Kind kind, int fd, long bytes, Path file) throws PosixException {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment address = Posix.mmap(bytes, Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_SHARED, fd, 0);
            return new RamBacking(kind, arena, attach(address, bytes, arena), kind == Kind.MEMFD ? fd : -1, file);
        } catch (PosixException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Ties the raw mapping to the arena, so closing the arena unmaps it and invalidates all slices. */
    @SuppressWarnings("restricted") // giving the raw mmap address its size and owner is the point
    private static MemorySegment attach(MemorySegment address, long bytes, Arena arena) {
        return address.reinterpret(bytes, arena, s -> {
            try {
                Posix.munmap(s, bytes);
            } catch (PosixException e) {
                // munmap of a range we mapped cannot fail short of a kernel bug; nothing else to do.
                throw new UncheckedIOException(e);
            }
        });
    }

    private static long roundToPages(long size) {
        if (size <= 0) {
            throw new IllegalArgumentException("RAM backing size must be positive: " + size);
        }
        long page = Posix.pageSize();
        long rounded = (size + page - 1) & -page;
        if (rounded < size) {
            throw new IllegalArgumentException("RAM backing size too large: " + size);
        }
        return rounded;
    }

    private static void closeQuietly(int fd, Exception primary) {
        try {
            Posix.close(fd);
        } catch (PosixException e) {
            primary.addSuppressed(e);
        }
    }

    /**
     * Asks the kernel to back the memory with transparent huge pages ({@code MADV_HUGEPAGE}),
     * which cuts TLB misses for large guests.
     *
     * @return true if the kernel accepted the advice; false if it has no transparent huge page
     *         support (EINVAL), in which case nothing changed
     * @throws PosixException        if the call fails for another reason
     * @throws IllegalStateException if the backing is closed
     */
    public boolean adviseHugePages() throws PosixException {
        requireOpen();
        try {
            Posix.madvise(segment, segment.byteSize(), Posix.MADV_HUGEPAGE);
            return true;
        } catch (PosixException e) {
            if (e.errno() == Errno.EINVAL) {
                return false;
            }
            throw e;
        }
    }

    /**
     * {@return the whole mapping; slices of it are what guest RAM regions and DMA mappings hand out
     * (read-only for a backing that is not {@link #isWritable() writable})}
     *
     * @throws IllegalStateException if the backing is closed
     */
    public MemorySegment segment() {
        requireOpen();
        return segment;
    }

    /** {@return the mapping's size in bytes (the requested size rounded up to whole pages)} */
    public long size() {
        return segment.byteSize();
    }

    /** {@return whether the memory may be written: false only for a read-only {@link #sharedFd}} */
    public boolean isWritable() {
        return writable;
    }

    /**
     * Marks the backing as used by {@code user}; a second user is refused, so that one address
     * space cannot unmap memory another still hands to its devices.
     */
    void claim(Object user) {
        if (!owner.compareAndSet(null, user) && owner.get() != user) {
            throw new IllegalArgumentException(this + " is already used by another address space");
        }
    }

    /** Undoes a {@link #claim} that did not take effect (a rejected region change). */
    void unclaim(Object user) {
        owner.compareAndSet(user, null);
    }

    /**
     * Checks where a RAM or ROM region's bytes live; for the region records' constructors.
     *
     * @param name          the region's name
     * @param size          its size in bytes
     * @param backingOffset where its bytes start in the backing
     * @param backing       its own backing, or null for the default one (checked when added)
     * @param needsWrites   whether the region is RAM, which a read-only backing cannot hold
     * @throws IllegalArgumentException if the offset is negative, or the own backing is read-only
     *                                  for RAM or does not hold {@code [backingOffset, +size)}
     */
    static void checkRegion(String name, long size, long backingOffset, RamBacking backing, boolean needsWrites) {
        if (backingOffset < 0) {
            throw new IllegalArgumentException("region '" + name + "': negative backing offset " + backingOffset);
        }
        if (backing == null) {
            return;
        }
        if (needsWrites && !backing.isWritable()) {
            throw new IllegalArgumentException("region '" + name + "': RAM cannot live in read-only " + backing
                    + " (use a RomRegion)");
        }
        if (backingOffset > backing.size() || size > backing.size() - backingOffset) {
            throw new IllegalArgumentException(String.format(
                    "region '%s' needs backing bytes [0x%x, +0x%x) but its own backing has 0x%x bytes",
                    name, backingOffset, size, backing.size()));
        }
    }

    /** {@return how the memory was obtained} */
    public Kind kind() {
        return kind;
    }

    /**
     * {@return the memfd descriptor for {@link Kind#MEMFD} backings (valid until {@link
     * #close()}), empty for the other kinds}
     */
    public OptionalInt fd() {
        return fd >= 0 ? OptionalInt.of(fd) : OptionalInt.empty();
    }

    /** {@return the file of a {@link Kind#SHARED_FILE} backing, or null for the other kinds} */
    public Path file() {
        return file;
    }

    /** {@return whether {@link #close()} has been called} */
    public boolean isClosed() {
        return closed.get();
    }

    /**
     * Unmaps the memory (and closes a memfd). Idempotent. Accesses through the segment afterwards
     * throw {@link IllegalStateException}, from any thread, even one that was in the middle of an
     * access (the shared arena's close makes it fail rather than fault). A {@link GuestMemory}
     * closes a backing itself: its default backing at {@link GuestMemory#close()}, a region's own
     * backing once no region uses it any more and the last DMA mapping that could reach it is
     * unmapped. Close a backing directly only if no address space uses it.
     *
     * @throws IllegalStateException if the memory is in use by an ongoing native call (the arena
     *                               cannot be closed while a downcall holds it)
     */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        try {
            arena.close();
        } finally {
            if (fd >= 0) {
                try {
                    Posix.close(fd);
                } catch (PosixException e) {
                    // close(2) of a memfd only reports EIO-free errors for a bad descriptor, which
                    // would be our bug; the memory itself is already unmapped.
                    throw new UncheckedIOException(e);
                }
            }
        }
    }

    private void requireOpen() {
        if (closed.get()) {
            throw new IllegalStateException("RAM backing is closed");
        }
    }

    /** {@return kind and size} */
    @Override
    public String toString() {
        return "RamBacking[" + kind + ", " + size() + " bytes" + (writable ? "" : ", read-only") + "]";
    }
}
