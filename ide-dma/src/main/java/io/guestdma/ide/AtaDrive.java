package io.guestdma.ide;

import io.guestdma.block.BlockBackend;
import io.guestdma.block.DiskGeometry;
import io.guestdma.migration.MigrationFormatException;
import io.guestdma.migration.StateReader;
import io.guestdma.migration.StateWriter;

/**
 * One unit on a channel, QEMU's {@code IDEState}: the task file, the PIO buffer, the cached
 * IDENTIFY block and the per-command state. A unit without a disk ({@link #present()} false) still
 * has registers, because both units latch every task-file write and an absent master answers some
 * commands. Guarded by its channel's lock.
 */
final class AtaDrive {

    /** What the PIO machinery does when the guest has moved the last byte of the buffer. */
    enum EndTransfer {
        /** Read the next block of sectors (READ SECTORS/MULTIPLE). */
        SECTOR_READ,
        /** Write the buffer to disk (WRITE SECTORS/MULTIPLE). */
        SECTOR_WRITE,
        /** The data phase is over. */
        TRANSFER_STOP,
        /** Nothing was started since reset: data reads return 0xffff-style filler. */
        DUMMY_TRANSFER_STOP,
        /** The 12-byte ATAPI command packet has arrived (QEMU's ide_atapi_cmd). */
        ATAPI_COMMAND,
        /** The next piece of an ATAPI reply (QEMU's ide_atapi_cmd_reply_end). */
        ATAPI_REPLY;

        /** Whether data flows from the device to the guest (QEMU's ide_is_pio_out). */
        boolean deviceToGuest() {
            return this != SECTOR_WRITE && this != ATAPI_COMMAND;
        }
    }

    /** The kinds of bus-master transfer (QEMU's ide_dma_cmd). */
    enum DmaCommand { READ, WRITE, TRIM, ATAPI }

    private static final String DEFAULT_MODEL = "QEMU HARDDISK";
    private static final String DEFAULT_FIRMWARE = "2.5+";

    final int unit;
    final DriveConfig config;
    /** Whether this is an ATAPI CD-ROM drive (QEMU's drive_kind IDE_CD). */
    final boolean cdrom;
    /** The medium; changes only for a CD-ROM (insert, eject), and is null when it has none. */
    BlockBackend backend;
    /** Capacity in 512-byte sectors (QEMU's nb_sectors); 0 for a CD-ROM without a medium. */
    long totalSectors;
    private final DiskGeometry geometry;
    private final String serial;

    // CHS as the guest last set it with INITIALIZE DEVICE PARAMETERS
    int heads;
    int sectorsPerTrack;
    boolean resetReverts;

    // task file; nsector holds up to 65536 once a command has expanded it
    int feature;
    int error;
    int nsector;
    int sector;
    int lcyl;
    int hcyl;
    int hobFeature;
    int hobNsector;
    int hobSector;
    int hobLcyl;
    int hobHcyl;
    int select;
    int status;
    boolean lba48;

    int multSectors;
    /** Sectors per PIO data block of the current command. */
    int reqNbSectors;

    /** PIO buffer; DMA_BUF_SECTORS sectors plus 4 bytes, as QEMU sizes it. */
    final byte[] ioBuffer = new byte[Ata.DMA_BUF_SECTORS * Ata.SECTOR_SIZE + 4];
    int dataPtr;
    int dataEnd;
    EndTransfer endTransfer = EndTransfer.DUMMY_TRANSFER_STOP;

    /** Bytes the PRD table described on the last walk (QEMU's io_buffer_size). */
    long ioBufferSize;
    DmaCommand dmaCommand = DmaCommand.READ;

    private final byte[] identifyData = new byte[512];
    private boolean identifySet;
    boolean writeCacheEnabled = true;

    // SMART, kept as QEMU does: reset only when the drive is created
    boolean smartEnabled = true;
    boolean smartAutosave = true;
    int smartSelftestCount;
    final byte[] smartSelftestData = new byte[512];

    // ATAPI state (QEMU's IDEState fields of the same names)
    int senseKey;
    int asc;
    /** 0 none, 1 report "no medium" next, 2 report UNIT ATTENTION next (QEMU's cdrom_changed). */
    int cdromChanged;
    boolean trayOpen;
    boolean trayLocked;
    boolean atapiDma;
    /** Next CD sector to read, or -1 while the reply is not a sector read. */
    long lba = -1;
    long packetTransferSize;
    int elementaryTransferSize;
    int ioBufferIndex;
    int cdSectorSize;
    /** GET EVENT STATUS NOTIFICATION's pending media events. */
    boolean newMediaEvent;
    boolean ejectRequestEvent;

    /**
     * @param unit 0 master, 1 slave
     * @param config the disk, or null for an absent unit
     * @param defaultSerial the serial QEMU gives this position when none is configured
     */
    AtaDrive(int unit, DriveConfig config, long totalSectors, DiskGeometry geometry,
             String defaultSerial) {
        this.unit = unit;
        this.config = config;
        this.cdrom = config != null && config.media() == DriveConfig.Media.CDROM;
        this.backend = config == null ? null : config.backend();
        this.totalSectors = totalSectors;
        this.geometry = geometry == null ? new DiskGeometry(0, 0, 0) : geometry;
        this.serial = config == null || config.serial() == null ? defaultSerial : config.serial();
        this.heads = this.geometry.heads();
        this.sectorsPerTrack = this.geometry.sectors();
        reset();
    }

    /** The serial number IDENTIFY and INQUIRY report. */
    String serial() {
        return serial;
    }

    /** Whether a drive is attached here (a CD-ROM drive is present even without a medium). */
    boolean present() {
        return config != null;
    }

    /** QEMU's media_present: a CD-ROM with its tray closed and a disc in it. */
    boolean mediumPresent() {
        return !trayOpen && backend != null && totalSectors > 0;
    }

    /** QEMU's ide_reset: registers to power-on values, no transfer, signature in place. */
    void reset() {
        if (resetReverts) {
            resetReverts = false;
            heads = geometry.heads();
            sectorsPerTrack = geometry.sectors();
        }
        multSectors = Ata.MAX_MULT_SECTORS;
        feature = 0;
        error = 0;
        nsector = 0;
        sector = 0;
        lcyl = 0;
        hcyl = 0;
        hobFeature = 0;
        hobSector = 0;
        hobNsector = 0;
        hobLcyl = 0;
        hobHcyl = 0;
        select = Ata.DEV_ALWAYS_ON;
        status = Ata.READY_STAT | Ata.SEEK_STAT;
        lba48 = false;
        senseKey = 0;
        asc = 0;
        cdromChanged = 0;
        packetTransferSize = 0;
        elementaryTransferSize = 0;
        ioBufferIndex = 0;
        cdSectorSize = 0;
        atapiDma = false;
        trayLocked = false;
        trayOpen = false;
        ioBufferSize = 0;
        reqNbSectors = 0;
        setSignature();
        endTransfer = EndTransfer.DUMMY_TRANSFER_STOP;
        dummyTransferStop();
    }

    /** The data port reads 0xff bytes until a command starts a transfer. */
    void dummyTransferStop() {
        dataPtr = 0;
        dataEnd = 0;
        ioBuffer[0] = (byte) 0xff;
        ioBuffer[1] = (byte) 0xff;
        ioBuffer[2] = (byte) 0xff;
        ioBuffer[3] = (byte) 0xff;
    }

    /**
     * The post-reset/diagnostic signature: 1/1 and cylinder 0 for a disk, 0xeb14 for an ATAPI
     * device, 0xffff if absent.
     */
    void setSignature() {
        select &= ~Ata.DEV_HEAD;
        nsector = 1;
        sector = 1;
        if (cdrom) {
            lcyl = 0x14;
            hcyl = 0xeb;
        } else if (present()) {
            lcyl = 0;
            hcyl = 0;
        } else {
            lcyl = 0xff;
            hcyl = 0xff;
        }
    }

    void abortCommand() {
        transferHalt();
        status = Ata.READY_STAT | Ata.ERR_STAT;
        error = Ata.ABRT_ERR;
    }

    void transferHalt() {
        endTransfer = EndTransfer.TRANSFER_STOP;
        dataPtr = 0;
        dataEnd = 0;
        status &= ~Ata.DRQ_STAT;
    }

    /** Arms a PIO data phase over {@code ioBuffer[0, size)}. */
    void transferStart(int size, EndTransfer then) {
        transferStart(0, size, then);
    }

    /** Arms a PIO data phase over {@code ioBuffer[from, from + size)}. */
    void transferStart(int from, int size, EndTransfer then) {
        dataPtr = from;
        dataEnd = from + size;
        if ((status & Ata.ERR_STAT) == 0) {
            status |= Ata.DRQ_STAT;
        }
        endTransfer = then;
    }

    /** The sector the task file addresses: LBA48, LBA28 or CHS (QEMU's ide_get_sector). */
    long currentSector() {
        if ((select & Ata.DEV_LBA) != 0) {
            if (lba48) {
                return ((long) hobHcyl << 40) | ((long) hobLcyl << 32) | ((long) hobSector << 24)
                        | ((long) hcyl << 16) | ((long) lcyl << 8) | sector;
            }
            return ((long) (select & Ata.DEV_HEAD) << 24) | (hcyl << 16) | (lcyl << 8) | sector;
        }
        long cylinder = (hcyl << 8) | lcyl;
        return cylinder * heads * sectorsPerTrack + (long) (select & Ata.DEV_HEAD) * sectorsPerTrack
                + (sector - 1);
    }

    /** Writes a sector number back into the task file in the current addressing mode. */
    void setCurrentSector(long sectorNum) {
        if ((select & Ata.DEV_LBA) != 0) {
            if (lba48) {
                sector = (int) (sectorNum & 0xff);
                lcyl = (int) ((sectorNum >>> 8) & 0xff);
                hcyl = (int) ((sectorNum >>> 16) & 0xff);
                hobSector = (int) ((sectorNum >>> 24) & 0xff);
                hobLcyl = (int) ((sectorNum >>> 32) & 0xff);
                hobHcyl = (int) ((sectorNum >>> 40) & 0xff);
            } else {
                select = (select & ~Ata.DEV_HEAD) | (int) ((sectorNum >>> 24) & Ata.DEV_HEAD);
                hcyl = (int) ((sectorNum >>> 16) & 0xff);
                lcyl = (int) ((sectorNum >>> 8) & 0xff);
                sector = (int) (sectorNum & 0xff);
            }
            return;
        }
        int perCylinder = heads * sectorsPerTrack;
        if (perCylinder == 0) {
            // A guest set 0 sectors per track with INITIALIZE DEVICE PARAMETERS; QEMU would divide
            // by zero here. Leave the task file as it is.
            return;
        }
        // QEMU computes this in unsigned 32-bit arithmetic.
        long cylinder = Integer.toUnsignedLong((int) (sectorNum / perCylinder));
        long rest = Math.floorMod(sectorNum, (long) perCylinder);
        hcyl = (int) ((cylinder >>> 8) & 0xff);
        lcyl = (int) (cylinder & 0xff);
        select = (select & ~Ata.DEV_HEAD) | (int) ((rest / sectorsPerTrack) & Ata.DEV_HEAD);
        sector = (int) ((rest % sectorsPerTrack) + 1) & 0xff;
    }

    /** QEMU's ide_sect_range_ok, with the numbers as unsigned 64-bit values. */
    boolean sectorRangeOk(long first, long count) {
        return Long.compareUnsigned(first, totalSectors) <= 0
                && Long.compareUnsigned(count, totalSectors - first) <= 0;
    }

    /** Expands the sector count for the command: 0 means 256 (LBA28) or 65536 (LBA48). */
    void applyLba48(boolean ext) {
        lba48 = ext;
        if (!ext) {
            if (nsector == 0) {
                nsector = 256;
            }
        } else if (nsector == 0 && hobNsector == 0) {
            nsector = 65536;
        } else {
            nsector = (hobNsector << 8) | (nsector & 0xff);
        }
    }

    /** Fills the PIO buffer with the IDENTIFY DEVICE block (built once, then cached). */
    void identify() {
        if (!identifySet) {
            buildIdentify();
            identifySet = true;
        }
        System.arraycopy(identifyData, 0, ioBuffer, 0, identifyData.length);
    }

    /** Fills the PIO buffer with the IDENTIFY PACKET DEVICE block (built once, then cached). */
    void identifyPacket() {
        if (!identifySet) {
            buildAtapiIdentify();
            identifySet = true;
        }
        System.arraycopy(identifyData, 0, ioBuffer, 0, identifyData.length);
    }

    /** QEMU's ide_atapi_identify. */
    private void buildAtapiIdentify() {
        java.util.Arrays.fill(identifyData, (byte) 0);
        // removable ATAPI CD-ROM, DRQ within 50 us of PACKET, 12-byte packets
        putIdentifyWord(0, (2 << 14) | (5 << 8) | (1 << 7) | (2 << 5));
        putString(10, serial, 20);
        putIdentifyWord(20, 3);
        putIdentifyWord(21, 512);
        putIdentifyWord(22, 4);
        putString(23, config.firmware(), 8);
        putString(27, config.model(), 40);
        putIdentifyWord(48, 1);
        putIdentifyWord(49, (1 << 9) | (1 << 8)); // LBA and DMA
        putIdentifyWord(53, 7);
        putIdentifyWord(62, 7);
        putIdentifyWord(63, 7);
        putIdentifyWord(64, 3);
        putIdentifyWord(65, 0xb4);
        putIdentifyWord(66, 0xb4);
        putIdentifyWord(67, 0x12c);
        putIdentifyWord(68, 0xb4);
        putIdentifyWord(71, 30);
        putIdentifyWord(72, 30);
        putIdentifyWord(80, 0x1e); // ATA/ATAPI-1 to -4
        putIdentifyWord(88, 0x3f | (1 << 13));
    }

    /** SET FEATURES changes words of the cached block (lost if IDENTIFY was never run). */
    void putIdentifyWord(int word, int value) {
        identifyData[2 * word] = (byte) value;
        identifyData[2 * word + 1] = (byte) (value >>> 8);
    }

    private void buildIdentify() {
        java.util.Arrays.fill(identifyData, (byte) 0);
        putIdentifyWord(0, 0x0040);
        putIdentifyWord(1, geometry.cylinders());
        putIdentifyWord(3, heads);
        putIdentifyWord(4, 512 * sectorsPerTrack);
        putIdentifyWord(5, 512);
        putIdentifyWord(6, sectorsPerTrack);
        putString(10, serial, 20);
        putIdentifyWord(20, 3);
        putIdentifyWord(21, 512);
        putIdentifyWord(22, 4);
        putString(23, config.firmware() == null ? DEFAULT_FIRMWARE : config.firmware(), 8);
        putString(27, config.model() == null ? DEFAULT_MODEL : config.model(), 40);
        putIdentifyWord(47, 0x8000 | Ata.MAX_MULT_SECTORS);
        putIdentifyWord(48, 1); // dword I/O
        putIdentifyWord(49, (1 << 11) | (1 << 9) | (1 << 8)); // IORDY, LBA, DMA
        putIdentifyWord(51, 0x200);
        putIdentifyWord(52, 0x200);
        putIdentifyWord(53, 1 | (1 << 1) | (1 << 2)); // words 54-58, 64-70 and 88 valid
        putIdentifyWord(54, geometry.cylinders());
        putIdentifyWord(55, heads);
        putIdentifyWord(56, sectorsPerTrack);
        int oldSize = geometry.cylinders() * heads * sectorsPerTrack;
        putIdentifyWord(57, oldSize);
        putIdentifyWord(58, oldSize >>> 16);
        if (multSectors != 0) {
            putIdentifyWord(59, 0x100 | multSectors);
        }
        putIdentifyWord(62, 0x07); // single-word DMA 0-2
        putIdentifyWord(63, 0x07); // multiword DMA 0-2
        putIdentifyWord(64, 0x03); // PIO 3-4
        putIdentifyWord(65, 120);
        putIdentifyWord(66, 120);
        putIdentifyWord(67, 120);
        putIdentifyWord(68, 120);
        putIdentifyWord(69, 1 << 14); // deterministic TRIM (discard granularity 512)
        putIdentifyWord(80, 0xf0); // ATA-3 to ATA-6
        putIdentifyWord(81, 0x16);
        putIdentifyWord(82, (1 << 14) | (1 << 5) | 1); // NOP, write cache, SMART
        putIdentifyWord(83, (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10)); // flush ext, flush, LBA48
        putIdentifyWord(84, 1 << 14);
        putIdentifyWord(85, writeCacheEnabled ? (1 << 14) | (1 << 5) | 1 : (1 << 14) | 1);
        putIdentifyWord(86, (1 << 13) | (1 << 12) | (1 << 10));
        putIdentifyWord(87, 1 << 14);
        putIdentifyWord(88, 0x3f | (1 << 13)); // UDMA 0-5 supported, UDMA 5 selected
        putIdentifyWord(93, 1 | (1 << 14) | 0x2000);
        putIdentifyWord(106, 0x6000); // 512-byte physical sectors
        putIdentifyWord(169, 1); // TRIM supported
        putIdentifyWord(217, 0); // rotation rate not reported
        long lba28 = Math.min(totalSectors, (1L << 28) - 1);
        putIdentifyWord(60, (int) lba28);
        putIdentifyWord(61, (int) (lba28 >>> 16));
        putIdentifyWord(100, (int) totalSectors);
        putIdentifyWord(101, (int) (totalSectors >>> 16));
        putIdentifyWord(102, (int) (totalSectors >>> 32));
        putIdentifyWord(103, (int) (totalSectors >>> 48));
    }

    // ------------------------------------------------------------------ migration

    /**
     * Writes the unit's registers, PIO buffer, cached IDENTIFY block and ATAPI state (QEMU's
     * vmstate_ide_drive with its PIO, tray and GESN subsections). The buffer goes whole up to
     * its last non-zero byte: ATAPI replies are built in place over what it held, so even bytes
     * outside the current transfer are guest-visible.
     */
    void save(StateWriter out) {
        out.bool(present()).bool(cdrom).bool(backend != null).u64(totalSectors);
        out.u16(heads).u16(sectorsPerTrack).bool(resetReverts);
        out.u8(feature).u8(error).u32(nsector).u8(sector).u8(lcyl).u8(hcyl);
        out.u8(hobFeature).u8(hobNsector).u8(hobSector).u8(hobLcyl).u8(hobHcyl);
        out.u8(select).u8(status).bool(lba48).u8(multSectors).u32(reqNbSectors);
        int used = ioBuffer.length;
        while (used > 0 && ioBuffer[used - 1] == 0) {
            used--;
        }
        out.bytes(java.util.Arrays.copyOf(ioBuffer, used));
        out.u32(dataPtr).u32(dataEnd).u8(endTransfer.ordinal());
        out.u64(ioBufferSize).u8(dmaCommand.ordinal());
        out.bool(identifySet).bytes(identifyData).bool(writeCacheEnabled);
        out.bool(smartEnabled).bool(smartAutosave).u8(smartSelftestCount).bytes(smartSelftestData);
        out.u8(senseKey).u8(asc).u8(cdromChanged).bool(trayOpen).bool(trayLocked).bool(atapiDma);
        out.u64(lba).u64(packetTransferSize).u32(elementaryTransferSize).u32(ioBufferIndex).u32(cdSectorSize);
        out.bool(newMediaEvent).bool(ejectRequestEvent);
    }

    /**
     * Reads what {@link #save} wrote into this unit, checking that the unit is the same kind with
     * the same medium and that every index into the buffer and every counter stays inside what
     * the data path can address. On failure the unit is half loaded: the caller resets it.
     */
    void load(StateReader in, String where) throws MigrationFormatException {
        if (in.bool(where + ".present") != present()) {
            throw in.failure(where + ".present", "the source " + (present() ? "has no" : "has a")
                    + " drive here, the destination " + (present() ? "has one" : "has none"));
        }
        if (in.bool(where + ".cdrom") != cdrom) {
            throw in.failure(where + ".cdrom", "the drive kinds differ (disk against CD-ROM)");
        }
        if (in.bool(where + ".medium") != (backend != null)) {
            throw in.failure(where + ".medium", "the source and the destination differ in having a medium");
        }
        if (in.u64(where + ".totalSectors") != totalSectors) {
            throw in.failure(where + ".totalSectors", "the medium's size differs from the destination's "
                    + totalSectors + " sectors");
        }
        heads = in.u16(where + ".heads");
        sectorsPerTrack = in.u16(where + ".sectorsPerTrack");
        if (heads > 16 || sectorsPerTrack > 255) {
            throw in.failure(where + ".geometry", heads + " heads, " + sectorsPerTrack
                    + " sectors per track is more than the registers can set");
        }
        resetReverts = in.bool(where + ".resetReverts");
        feature = in.u8(where + ".feature");
        error = in.u8(where + ".error");
        nsector = (int) in.u32InRange(where + ".nsector", 0, 65536);
        sector = in.u8(where + ".sector");
        lcyl = in.u8(where + ".lcyl");
        hcyl = in.u8(where + ".hcyl");
        hobFeature = in.u8(where + ".hobFeature");
        hobNsector = in.u8(where + ".hobNsector");
        hobSector = in.u8(where + ".hobSector");
        hobLcyl = in.u8(where + ".hobLcyl");
        hobHcyl = in.u8(where + ".hobHcyl");
        select = in.u8(where + ".select");
        status = in.u8(where + ".status");
        lba48 = in.bool(where + ".lba48");
        multSectors = in.u8(where + ".multSectors");
        if (multSectors > Ata.MAX_MULT_SECTORS) {
            throw in.failure(where + ".multSectors", multSectors + " is above " + Ata.MAX_MULT_SECTORS);
        }
        // a PIO block never exceeds the buffer: MULTIPLE commands cap it at MAX_MULT_SECTORS
        reqNbSectors = (int) in.u32InRange(where + ".reqNbSectors", 0, Ata.MAX_MULT_SECTORS);
        byte[] buffer = in.bytes(where + ".ioBuffer", ioBuffer.length);
        System.arraycopy(buffer, 0, ioBuffer, 0, buffer.length);
        java.util.Arrays.fill(ioBuffer, buffer.length, ioBuffer.length, (byte) 0);
        dataPtr = (int) in.u32InRange(where + ".dataPtr", 0, ioBuffer.length);
        dataEnd = (int) in.u32InRange(where + ".dataEnd", dataPtr, ioBuffer.length);
        endTransfer = enumAt(EndTransfer.values(), in.u8(where + ".endTransfer"), in, where + ".endTransfer");
        ioBufferSize = in.u64(where + ".ioBufferSize");
        dmaCommand = enumAt(DmaCommand.values(), in.u8(where + ".dmaCommand"), in, where + ".dmaCommand");
        // a PRD table describes at most one page of 8-byte entries of 64 KiB each; ATAPI keeps a
        // negative marker of the bytes moved there
        long limit = dmaCommand == DmaCommand.ATAPI ? 1L << 41 : 512L * 0x10000;
        if (ioBufferSize < (dmaCommand == DmaCommand.ATAPI ? -limit : 0) || ioBufferSize > limit) {
            throw in.failure(where + ".ioBufferSize", ioBufferSize + " is more than a PRD table describes");
        }
        identifySet = in.bool(where + ".identifySet");
        byte[] identify = in.bytes(where + ".identifyData", identifyData.length);
        byte[] selftest;
        if (identify.length != identifyData.length) {
            throw in.failure(where + ".identifyData", "is " + identify.length + " bytes, not 512");
        }
        System.arraycopy(identify, 0, identifyData, 0, identify.length);
        writeCacheEnabled = in.bool(where + ".writeCacheEnabled");
        smartEnabled = in.bool(where + ".smartEnabled");
        smartAutosave = in.bool(where + ".smartAutosave");
        smartSelftestCount = in.u8(where + ".smartSelftestCount");
        if (smartSelftestCount > 21) {
            throw in.failure(where + ".smartSelftestCount", smartSelftestCount + " is above 21 log entries");
        }
        selftest = in.bytes(where + ".smartSelftestData", smartSelftestData.length);
        if (selftest.length != smartSelftestData.length) {
            throw in.failure(where + ".smartSelftestData", "is " + selftest.length + " bytes, not 512");
        }
        System.arraycopy(selftest, 0, smartSelftestData, 0, selftest.length);
        senseKey = in.u8(where + ".senseKey");
        asc = in.u8(where + ".asc");
        cdromChanged = in.u8(where + ".cdromChanged");
        if (cdromChanged > 2) {
            throw in.failure(where + ".cdromChanged", cdromChanged + " is not 0, 1 or 2");
        }
        trayOpen = in.bool(where + ".trayOpen");
        trayLocked = in.bool(where + ".trayLocked");
        atapiDma = in.bool(where + ".atapiDma");
        lba = in.u64(where + ".lba");
        packetTransferSize = in.u64(where + ".packetTransferSize");
        elementaryTransferSize = (int) in.u32InRange(where + ".elementaryTransferSize", 0, 0xffff);
        ioBufferIndex = (int) in.u32InRange(where + ".ioBufferIndex", 0, ioBuffer.length);
        cdSectorSize = (int) in.u32(where + ".cdSectorSize");
        newMediaEvent = in.bool(where + ".newMediaEvent");
        ejectRequestEvent = in.bool(where + ".ejectRequestEvent");
        checkAtapiTransfer(in, where);
    }

    /**
     * The ATAPI reply machinery indexes the buffer with these: a sector read stays inside one
     * sector of a size READ CD can ask for and inside a medium of at most 2<sup>40</sup> bytes; a
     * reply from the buffer never runs past it.
     */
    private void checkAtapiTransfer(StateReader in, String where) throws MigrationFormatException {
        if (packetTransferSize < 0 || packetTransferSize > (1L << 40)) {
            throw in.failure(where + ".packetTransferSize", packetTransferSize + " is outside 0..2^40");
        }
        if (cdSectorSize != 0 && cdSectorSize != Atapi.SECTOR_SIZE && cdSectorSize != Atapi.RAW_SECTOR_SIZE) {
            throw in.failure(where + ".cdSectorSize", cdSectorSize + " is not 0, 2048 or 2352");
        }
        if (lba == -1) {
            if (elementaryTransferSize != 0) {
                throw in.failure(where + ".elementaryTransferSize", "a reply from the buffer is sent in one piece");
            }
            if (ioBufferIndex + packetTransferSize > ioBuffer.length) {
                throw in.failure(where + ".packetTransferSize", "a reply of " + packetTransferSize
                        + " bytes from buffer offset " + ioBufferIndex + " runs past the buffer");
            }
            return;
        }
        if (lba < 0 || lba > (1L << 40) / Atapi.SECTOR_SIZE) {
            throw in.failure(where + ".lba", lba + " is neither -1 nor a sector of a medium");
        }
        if (cdSectorSize == 0 && packetTransferSize != 0) {
            throw in.failure(where + ".cdSectorSize", "a sector read needs a sector size");
        }
        if (ioBufferIndex > cdSectorSize) {
            throw in.failure(where + ".ioBufferIndex", ioBufferIndex + " is past the " + cdSectorSize
                    + "-byte sector");
        }
    }

    private static <E extends Enum<E>> E enumAt(E[] values, int ordinal, StateReader in, String field)
            throws MigrationFormatException {
        if (ordinal >= values.length) {
            throw in.failure(field, ordinal + " names no " + values[0].getDeclaringClass().getSimpleName());
        }
        return values[ordinal];
    }

    /** ATA strings: space padded, two characters per word, first character in the high byte. */
    private void putString(int word, String text, int length) {
        for (int i = 0; i < length; i++) {
            char c = i < text.length() ? text.charAt(i) : ' ';
            identifyData[2 * word + (i ^ 1)] = (byte) c;
        }
    }
}
