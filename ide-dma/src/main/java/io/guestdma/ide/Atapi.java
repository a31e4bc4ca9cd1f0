package io.guestdma.ide;

/**
 * The ATAPI (MMC) command set of a CD-ROM drive, following QEMU 7.2's {@code hw/ide/atapi.c}:
 * decodes the 12-byte packet in the drive's PIO buffer, builds replies in place in that buffer (as
 * QEMU does, so bytes a reply does not write keep what the buffer held) and hands the data phase,
 * sense reporting and sector reads to the channel through {@link Transfers}. Every value comes from
 * the guest: nothing here throws for any packet. Called under the channel lock.
 */
final class Atapi {
    /** What a command needs from the channel: QEMU's reply, error and read primitives. */
    interface Transfers {
        /** Good status with an interrupt (ide_atapi_cmd_ok). */
        void ok(AtaDrive s);

        /** CHECK CONDITION: sense key in the error register, interrupt (ide_atapi_cmd_error). */
        void error(AtaDrive s, int senseKey, int asc);

        /** UNIT ATTENTION pending: the bare check status QEMU gives (ide_atapi_cmd_check_status). */
        void checkStatus(AtaDrive s);

        /** ATA-level ABRT without an interrupt (ide_abort_command). */
        void abort(AtaDrive s);

        /** Sends {@code min(size, maxSize)} bytes of the buffer by PIO or DMA (ide_atapi_cmd_reply). */
        void reply(AtaDrive s, int size, int maxSize);

        /**
         * Reads {@code count} sectors from {@code lba} by PIO or DMA (ide_atapi_cmd_read): 2048
         * bytes of user data each, or {@link #RAW_SECTOR_SIZE} bytes of raw Mode 1 sector.
         */
        void read(AtaDrive s, long lba, long count, int sectorSize);
    }

    // Sense keys
    static final int NO_SENSE = 0x00;
    static final int NOT_READY = 0x02;
    static final int ILLEGAL_REQUEST = 0x05;
    static final int UNIT_ATTENTION = 0x06;

    // Additional sense codes
    static final int ASC_ILLEGAL_OPCODE = 0x20;
    static final int ASC_LOGICAL_BLOCK_OOR = 0x21;
    static final int ASC_INV_FIELD_IN_CMD_PACKET = 0x24;
    static final int ASC_MEDIUM_MAY_HAVE_CHANGED = 0x28;
    static final int ASC_INCOMPATIBLE_FORMAT = 0x30;
    static final int ASC_SAVING_PARAMETERS_NOT_SUPPORTED = 0x39;
    static final int ASC_MEDIUM_NOT_PRESENT = 0x3a;
    static final int ASC_DATA_PHASE_ERROR = 0x4b;
    static final int ASC_MEDIA_REMOVAL_PREVENTED = 0x53;

    // Interrupt reason bits in the sector count register
    static final int INT_REASON_CD = 0x01;
    static final int INT_REASON_IO = 0x02;

    static final int SECTOR_SIZE = 2048;
    /** A raw CD sector: sync pattern, header, 2048 bytes of data, EDC/ECC (zeros here, as in QEMU). */
    static final int RAW_SECTOR_SIZE = 2352;
    /** Where a raw sector's user data starts. */
    static final int RAW_DATA_OFFSET = 16;
    static final int PACKET_SIZE = 12;
    /** Above this many 512-byte sectors a medium is a DVD (QEMU's CD_MAX_SECTORS, 80 minutes). */
    static final long CD_MAX_SECTORS = 80L * 60 * 75 * 2048 / 512;

    // Opcodes
    static final int TEST_UNIT_READY = 0x00;
    static final int REQUEST_SENSE = 0x03;
    static final int INQUIRY = 0x12;
    static final int START_STOP_UNIT = 0x1b;
    static final int PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
    static final int READ_CAPACITY = 0x25;
    static final int READ_10 = 0x28;
    static final int SEEK_10 = 0x2b;
    static final int READ_TOC = 0x43;
    static final int GET_CONFIGURATION = 0x46;
    static final int GET_EVENT_STATUS_NOTIFICATION = 0x4a;
    static final int READ_DISC_INFORMATION = 0x51;
    static final int MODE_SENSE_10 = 0x5a;
    static final int READ_12 = 0xa8;
    static final int READ_DVD_STRUCTURE = 0xad;
    static final int SET_SPEED = 0xbb;
    static final int MECHANISM_STATUS = 0xbd;
    static final int READ_CD = 0xbe;

    private static final int MMC_PROFILE_DVD_ROM = 0x0010;
    private static final int MMC_PROFILE_CD_ROM = 0x0008;
    private static final int MODE_PAGE_R_W_ERROR = 0x01;
    private static final int MODE_PAGE_AUDIO_CTL = 0x0e;
    private static final int MODE_PAGE_CAPABILITIES = 0x2a;
    private static final int GESN_MEDIA = 4;

    /** Flags of QEMU's command table. */
    private static final int CHECK_READY = 1;
    private static final int NONDATA = 2;
    private static final int ALLOW_UA = 4;
    /** Not in the table: ILLEGAL REQUEST / invalid opcode. */
    private static final int UNKNOWN = -1;

    private Atapi() {
    }

    private static int flags(int opcode) {
        return switch (opcode) {
            case TEST_UNIT_READY, SEEK_10 -> CHECK_READY | NONDATA;
            case REQUEST_SENSE, INQUIRY, GET_CONFIGURATION, GET_EVENT_STATUS_NOTIFICATION -> ALLOW_UA;
            // START STOP UNIT reports the not-ready condition itself
            case START_STOP_UNIT, PREVENT_ALLOW_MEDIUM_REMOVAL, SET_SPEED -> NONDATA;
            case READ_CAPACITY, READ_10, READ_12, READ_TOC, READ_DISC_INFORMATION, READ_DVD_STRUCTURE, READ_CD ->
                    CHECK_READY;
            case MODE_SENSE_10, MECHANISM_STATUS -> 0;
            default -> UNKNOWN;
        };
    }

    /** QEMU's ide_atapi_cmd: the packet is in {@code s.ioBuffer[0, 12)}. */
    static void execute(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int opcode = buf[0] & 0xff;
        int flags = flags(opcode);
        boolean allowUa = flags != UNKNOWN && (flags & ALLOW_UA) != 0;
        if (s.senseKey == UNIT_ATTENTION && !allowUa) {
            t.checkStatus(s);
            return;
        }
        // After a medium change, report "no medium" once and then UNIT ATTENTION, for guests that
        // only notice a change that way.
        if (!allowUa && !s.trayOpen && s.backend != null && s.cdromChanged != 0) {
            if (s.cdromChanged == 1) {
                t.error(s, NOT_READY, ASC_MEDIUM_NOT_PRESENT);
                s.cdromChanged = 2;
            } else {
                t.error(s, UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED);
                s.cdromChanged = 0;
            }
            return;
        }
        if (flags == UNKNOWN) {
            t.error(s, ILLEGAL_REQUEST, ASC_ILLEGAL_OPCODE);
            return;
        }
        if ((flags & CHECK_READY) != 0 && !s.mediumPresent()) {
            t.error(s, NOT_READY, ASC_MEDIUM_NOT_PRESENT);
            return;
        }
        // A data command by PIO with a byte count limit of 0 cannot move anything: ATA-level abort.
        if ((flags & NONDATA) == 0 && !s.atapiDma && byteCountLimit(s) == 0) {
            t.abort(s);
            return;
        }
        switch (opcode) {
            case TEST_UNIT_READY, SET_SPEED -> t.ok(s);
            case REQUEST_SENSE -> requestSense(s, t);
            case INQUIRY -> inquiry(s, t);
            case START_STOP_UNIT -> startStopUnit(s, t);
            case PREVENT_ALLOW_MEDIUM_REMOVAL -> {
                s.trayLocked = (buf[4] & 1) != 0;
                t.ok(s);
            }
            case READ_CAPACITY -> {
                long total = s.totalSectors >> 2;
                putBe32(buf, 0, (int) (total - 1)); // the last sector's number
                putBe32(buf, 4, SECTOR_SIZE);
                t.reply(s, 8, 8);
            }
            case READ_10, READ_12 -> read(s, t, opcode);
            case READ_CD -> readCd(s, t);
            case SEEK_10 -> {
                long lba = be32(buf, 2);
                if (lba >= s.totalSectors >> 2) {
                    t.error(s, ILLEGAL_REQUEST, ASC_LOGICAL_BLOCK_OOR);
                } else {
                    t.ok(s);
                }
            }
            case GET_CONFIGURATION -> getConfiguration(s, t);
            case READ_TOC -> readToc(s, t);
            case READ_DVD_STRUCTURE -> readDvdStructure(s, t);
            case READ_DISC_INFORMATION -> {
                int maxLength = be16(buf, 7);
                if ((buf[1] & 7) != 0) {
                    t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET); // Blu-ray types
                    return;
                }
                java.util.Arrays.fill(buf, 0, 34, (byte) 0);
                buf[1] = 32;
                buf[2] = 0x0e; // last session complete, disc finalized
                buf[3] = 1; // first track
                buf[4] = 1; // sessions
                buf[5] = 1; // first track of the last session
                buf[6] = 1; // last track of the last session
                buf[7] = 0x20; // unrestricted use
                t.reply(s, 34, maxLength);
            }
            case GET_EVENT_STATUS_NOTIFICATION -> getEventStatus(s, t);
            case MODE_SENSE_10 -> modeSense(s, t);
            case MECHANISM_STATUS -> {
                int maxLength = be16(buf, 8);
                for (int i = 0; i < 8; i++) {
                    buf[i] = 0;
                }
                buf[5] = 1; // one slot
                t.reply(s, 8, maxLength);
            }
            default -> t.error(s, ILLEGAL_REQUEST, ASC_ILLEGAL_OPCODE);
        }
    }

    /** The byte count limit in the cylinder registers; 0xffff counts as 0xfffe. */
    static int byteCountLimit(AtaDrive s) {
        int limit = s.lcyl | s.hcyl << 8;
        return limit == 0xffff ? 0xfffe : limit;
    }

    private static void requestSense(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int maxLength = buf[4] & 0xff;
        java.util.Arrays.fill(buf, 0, 18, (byte) 0);
        buf[0] = (byte) 0xf0; // valid, current errors
        buf[2] = (byte) s.senseKey;
        buf[7] = 10;
        buf[12] = (byte) s.asc;
        if (s.senseKey == UNIT_ATTENTION) {
            s.senseKey = NO_SENSE;
        }
        t.reply(s, 18, maxLength);
    }

    private static void inquiry(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int pageCode = buf[2] & 0xff;
        int maxLength = buf[4] & 0xff;
        int length;
        int sizeIndex;
        int preamble;
        if ((buf[1] & 1) != 0) {
            // Vital product data page
            preamble = 4;
            sizeIndex = 3;
            buf[0] = 0x05;
            buf[1] = (byte) pageCode;
            buf[2] = 0;
            length = 4;
            switch (pageCode) {
                case 0x00 -> {
                    buf[length++] = 0x00;
                    buf[length++] = (byte) 0x83;
                }
                case 0x83 -> {
                    if (length + 24 > maxLength) {
                        // not even room for the serial number descriptor
                        t.error(s, ILLEGAL_REQUEST, ASC_DATA_PHASE_ERROR);
                        return;
                    }
                    buf[length++] = 0x02; // ASCII
                    buf[length++] = 0x00; // vendor specific
                    buf[length++] = 0x00;
                    buf[length++] = 20;
                    padAscii(buf, length, 20, s.serial());
                    length += 20;
                    if (length + 72 <= maxLength) {
                        buf[length++] = 0x02;
                        buf[length++] = 0x01; // T10 vendor identification
                        buf[length++] = 0x00;
                        buf[length++] = 68;
                        padAscii(buf, length, 8, "ATA");
                        length += 8;
                        padAscii(buf, length, 40, s.config.model());
                        length += 40;
                        padAscii(buf, length, 20, s.serial());
                        length += 20;
                    }
                }
                default -> {
                    t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
                    return;
                }
            }
        } else {
            preamble = 5;
            sizeIndex = 4;
            buf[0] = 0x05; // CD-ROM
            buf[1] = (byte) 0x80; // removable
            buf[2] = 0x00;
            buf[3] = 0x21; // ATAPI-2 response format
            buf[5] = 0;
            buf[6] = 0;
            buf[7] = 0;
            padAscii(buf, 8, 8, "QEMU");
            padAscii(buf, 16, 16, "QEMU DVD-ROM");
            padAscii(buf, 32, 4, s.config.firmware());
            length = 36;
        }
        buf[sizeIndex] = (byte) (length - preamble);
        t.reply(s, length, maxLength);
    }

    private static void startStopUnit(AtaDrive s, Transfers t) {
        int control = s.ioBuffer[4] & 0xff;
        boolean start = (control & 1) != 0;
        boolean loadEject = (control & 2) != 0;
        if ((control & 0xf0) != 0) {
            t.ok(s); // a power condition: no tray movement
            return;
        }
        if (loadEject) {
            if (!start && !s.trayOpen && s.trayLocked) {
                t.error(s, s.backend != null ? NOT_READY : ILLEGAL_REQUEST, ASC_MEDIA_REMOVAL_PREVENTED);
                return;
            }
            s.trayOpen = !start;
        }
        t.ok(s);
    }

    private static void read(AtaDrive s, Transfers t, int opcode) {
        byte[] buf = s.ioBuffer;
        long count = opcode == READ_10 ? be16(buf, 7) : be32(buf, 6);
        if (count == 0) {
            t.ok(s);
            return;
        }
        long lba = be32(buf, 2);
        if (inRange(s, t, lba, count)) {
            t.read(s, lba, count, SECTOR_SIZE);
        }
    }

    /** The LBA range check of READ and READ CD; reports LOGICAL BLOCK OUT OF RANGE if it fails. */
    private static boolean inRange(AtaDrive s, Transfers t, long lba, long count) {
        long total = s.totalSectors >> 2;
        // QEMU adds in unsigned 32-bit arithmetic: a wrapped end passes only if below the total.
        long last = (lba + count - 1) & 0xffff_ffffL;
        if (lba >= total || last >= total) {
            t.error(s, ILLEGAL_REQUEST, ASC_LOGICAL_BLOCK_OOR);
            return false;
        }
        return true;
    }

    /**
     * READ CD (QEMU 7.2's cmd_read_cd): the 24-bit count, the range check, then what byte 9 asks
     * for: nothing (0x00), the user data (0x10, as READ(10)) or the whole raw sector (0xf8: sync,
     * header, data, zeros for EDC/ECC); any other selection is an invalid field.
     */
    private static void readCd(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        long count = (buf[6] & 0xffL) << 16 | (buf[7] & 0xff) << 8 | buf[8] & 0xff;
        if (count == 0) {
            t.ok(s);
            return;
        }
        long lba = be32(buf, 2);
        if (!inRange(s, t, lba, count)) {
            return;
        }
        switch (buf[9] & 0xf8) {
            case 0x00 -> t.ok(s);
            case 0x10 -> t.read(s, lba, count, SECTOR_SIZE);
            case 0xf8 -> t.read(s, lba, count, RAW_SECTOR_SIZE);
            default -> t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
        }
    }

    /**
     * Turns the user data at {@link #RAW_DATA_OFFSET} of {@code buf} into a raw Mode 1 sector
     * around it: the 12-byte sync pattern, the header (the address as minutes, seconds, frames
     * from the 150-frame lead-in, and mode 1), and 288 bytes of EDC/ECC left zero as QEMU does.
     */
    static void rawSector(byte[] buf, long lba) {
        buf[0] = 0;
        java.util.Arrays.fill(buf, 1, 11, (byte) 0xff);
        buf[11] = 0;
        long frames = lba + 150;
        buf[12] = (byte) (frames / 75 / 60);
        buf[13] = (byte) (frames / 75 % 60);
        buf[14] = (byte) (frames % 75);
        buf[15] = 1;
        java.util.Arrays.fill(buf, RAW_DATA_OFFSET + SECTOR_SIZE, RAW_SECTOR_SIZE, (byte) 0);
    }

    private static void getConfiguration(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        if (buf[2] != 0 || buf[3] != 0) {
            t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
            return;
        }
        int maxLength = Math.min(be16(buf, 7), 512);
        java.util.Arrays.fill(buf, 0, Math.max(maxLength, 20), (byte) 0);
        int current = 0;
        if (s.mediumPresent()) {
            current = s.totalSectors > CD_MAX_SECTORS ? MMC_PROFILE_DVD_ROM : MMC_PROFILE_CD_ROM;
        }
        putBe16(buf, 6, current);
        buf[10] = 0x03; // persistent and current
        int length = 12;
        for (int profile : new int[] {MMC_PROFILE_DVD_ROM, MMC_PROFILE_CD_ROM}) {
            putBe16(buf, length, profile);
            buf[length + 2] = (byte) (profile == current ? 1 : 0);
            buf[11] += 4;
            length += 4;
        }
        putBe32(buf, 0, length - 4);
        t.reply(s, length, maxLength);
    }

    /** READ TOC/PMA/ATIP: one data track from sector 0 to the lead-out (QEMU's cdrom.c). */
    private static void readToc(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int maxLength = be16(buf, 7);
        int format = (buf[9] & 0xff) >>> 6;
        boolean msf = (buf[1] & 2) != 0;
        int startTrack = buf[6] & 0xff;
        long total = s.totalSectors >> 2;
        switch (format) {
            case 0 -> {
                if (startTrack > 1 && startTrack != 0xaa) {
                    t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
                    return;
                }
                int q = 2;
                buf[q++] = 1; // first track
                buf[q++] = 1; // last track
                if (startTrack <= 1) {
                    q = tocAddress(buf, q, 0x14, 1, msf, 0);
                }
                q = tocAddress(buf, q, 0x16, 0xaa, msf, total); // lead-out
                putBe16(buf, 0, q - 2);
                t.reply(s, q, maxLength);
            }
            case 1 -> {
                java.util.Arrays.fill(buf, 0, 12, (byte) 0);
                buf[1] = 0x0a;
                buf[2] = 0x01;
                buf[3] = 0x01;
                t.reply(s, 12, maxLength);
            }
            case 2 -> {
                int q = 2;
                buf[q++] = 1; // first session
                buf[q++] = 1; // last session
                q = rawTocEntry(buf, q, 0xa0, new byte[] {0, 0, 0, 0, 1, 0, 0}); // first track 1
                q = rawTocEntry(buf, q, 0xa1, new byte[] {0, 0, 0, 0, 1, 0, 0}); // last track 1
                q = rawTocEntry(buf, q, 0xa2, new byte[] {0, 0, 0});
                q = msfOrLba(buf, q, msf, total); // lead-out
                q = rawTocEntry(buf, q, 1, new byte[] {0, 0, 0});
                q = msfOrLba(buf, q, msf, 0); // track 1
                putBe16(buf, 0, q - 2);
                t.reply(s, q, maxLength);
            }
            default -> t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
        }
    }

    /** READ DVD STRUCTURE for a DVD-ROM (QEMU's cmd_read_dvd_structure); BD formats are refused. */
    private static void readDvdStructure(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int media = buf[1] & 0xff;
        int format = buf[7] & 0xff;
        int maxLength = be16(buf, 8);
        if (format < 0xff) {
            if (s.mediumPresent() && s.totalSectors <= CD_MAX_SECTORS) {
                t.error(s, ILLEGAL_REQUEST, ASC_INCOMPATIBLE_FORMAT);
                return;
            }
            if (!s.mediumPresent()) {
                t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
                return;
            }
        }
        // QEMU clears the allocation length first, the packet included: the layer number it then
        // reads from the packet is 0 unless the allocation is at most 6 bytes.
        java.util.Arrays.fill(buf, 0, Math.min(maxLength, buf.length), (byte) 0);
        if (media != 0 || (format > 0x7f && format != 0xff)) {
            t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
            return;
        }
        int length;
        switch (format) {
            case 0x00 -> {
                long total = s.totalSectors >> 2;
                if (buf[6] != 0) {
                    t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
                    return;
                }
                if (total == 0) {
                    t.error(s, ILLEGAL_REQUEST, ASC_MEDIUM_NOT_PRESENT);
                    return;
                }
                buf[4] = 1; // DVD-ROM, part version 1
                buf[5] = 0x0f; // 120 mm, maximum rate unspecified
                buf[6] = 1; // one layer, read-only
                buf[7] = 0;
                putBe32(buf, 8, 0);
                putBe32(buf, 12, (int) (total - 1));
                putBe32(buf, 16, (int) (total - 1));
                putBe16(buf, 0, 2048 + 2);
                length = 2048 + 4;
            }
            case 0x01 -> {
                buf[4] = 0; // no copyright data
                buf[5] = 0; // no region restrictions
                putBe16(buf, 0, 4 + 2);
                length = 4 + 4;
            }
            case 0x04 -> {
                putBe16(buf, 0, 2048 + 2); // manufacturing information: zeros
                length = 2048 + 4;
            }
            case 0xff -> {
                int[][] list = {{0x00, 2048 + 4}, {0x01, 4 + 4}, {0x03, 188 + 4}, {0x04, 2048 + 4}};
                for (int i = 0; i < list.length; i++) {
                    buf[4 + 4 * i] = (byte) list[i][0];
                    buf[5 + 4 * i] = 0x40; // readable, not writable
                    putBe16(buf, 6 + 4 * i, list[i][1]);
                }
                putBe16(buf, 0, 16 + 2);
                length = 16 + 4;
            }
            default -> {
                t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET); // 0x03 (no BCA) and the rest
                return;
            }
        }
        t.reply(s, length, maxLength);
    }

    private static int tocAddress(byte[] buf, int q, int control, int track, boolean msf, long lba) {
        buf[q++] = 0;
        buf[q++] = (byte) control;
        buf[q++] = (byte) track;
        buf[q++] = 0;
        return msfOrLba(buf, q, msf, lba);
    }

    /** A raw TOC descriptor up to its address: session 1, data track, the point, then {@code rest}. */
    private static int rawTocEntry(byte[] buf, int q, int point, byte[] rest) {
        buf[q++] = 1;
        buf[q++] = 0x14;
        buf[q++] = 0;
        buf[q++] = (byte) point;
        System.arraycopy(rest, 0, buf, q, rest.length);
        return q + rest.length;
    }

    /** Four bytes: reserved and minute/second/frame (150 frames of lead-in), or a 32-bit LBA. */
    private static int msfOrLba(byte[] buf, int q, boolean msf, long lba) {
        if (msf) {
            int frames = (int) lba + 150;
            buf[q] = 0;
            buf[q + 1] = (byte) (frames / 75 / 60);
            buf[q + 2] = (byte) (frames / 75 % 60);
            buf[q + 3] = (byte) (frames % 75);
        } else {
            putBe32(buf, q, (int) lba);
        }
        return q + 4;
    }

    private static void getEventStatus(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int maxLength = be16(buf, 7);
        if ((buf[1] & 1) == 0) {
            t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET); // only polling is supported
            return;
        }
        int requested = buf[4] & 0xff;
        buf[3] = (byte) (1 << GESN_MEDIA);
        int used;
        if ((requested & (1 << GESN_MEDIA)) != 0) {
            buf[2] = GESN_MEDIA;
            int mediaStatus = s.trayOpen ? 1 : s.backend != null ? 2 : 0;
            int event = 0;
            if (!s.trayOpen) {
                if (s.newMediaEvent) {
                    event = 2;
                    s.newMediaEvent = false;
                } else if (s.ejectRequestEvent) {
                    event = 1;
                    s.ejectRequestEvent = false;
                }
            }
            buf[4] = (byte) event;
            buf[5] = (byte) mediaStatus;
            buf[6] = 0;
            buf[7] = 0;
            used = 8;
        } else {
            buf[2] = (byte) 0x80; // no event available
            used = 4;
        }
        putBe16(buf, 0, used - 4);
        t.reply(s, used, maxLength);
    }

    private static void modeSense(AtaDrive s, Transfers t) {
        byte[] buf = s.ioBuffer;
        int maxLength = be16(buf, 7);
        int control = buf[2] & 0xff;
        int action = control >>> 6;
        int page = control & 0x3f;
        if (action == 3) {
            t.error(s, ILLEGAL_REQUEST, ASC_SAVING_PARAMETERS_NOT_SUPPORTED);
            return;
        }
        if (action != 0) {
            t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
            return;
        }
        int length = switch (page) {
            case MODE_PAGE_R_W_ERROR -> 16;
            case MODE_PAGE_AUDIO_CTL -> 24;
            case MODE_PAGE_CAPABILITIES -> 30;
            default -> 0;
        };
        if (length == 0) {
            t.error(s, ILLEGAL_REQUEST, ASC_INV_FIELD_IN_CMD_PACKET);
            return;
        }
        putBe16(buf, 0, length - 2);
        buf[2] = 0x70;
        for (int i = 3; i < 8; i++) {
            buf[i] = 0;
        }
        buf[8] = (byte) page;
        buf[9] = (byte) (length - 10);
        switch (page) {
            case MODE_PAGE_R_W_ERROR -> {
                buf[10] = 0x00;
                buf[11] = 0x05; // read retry count
                for (int i = 12; i < 16; i++) {
                    buf[i] = 0;
                }
            }
            case MODE_PAGE_AUDIO_CTL -> {
                // Only the volume bytes are written; the rest keeps what the buffer held, as in QEMU.
                buf[17] = 0;
                buf[19] = 0;
                buf[21] = 0;
                buf[23] = 0;
            }
            default -> {
                buf[10] = 0x3b; // reads CD-R/RW, DVD-ROM/R/RAM
                buf[11] = 0x00;
                buf[12] = 0x71; // claims audio play, which some Linux automounters look for
                buf[13] = 3 << 5;
                buf[14] = (byte) (1 | (1 << 3) | (1 << 5) | (s.trayLocked ? 1 << 1 : 0));
                buf[15] = 0;
                putBe16(buf, 16, 704); // 4x
                buf[18] = 0;
                buf[19] = 2;
                putBe16(buf, 20, 512);
                putBe16(buf, 22, 704);
                for (int i = 24; i < 30; i++) {
                    buf[i] = 0;
                }
            }
        }
        t.reply(s, length, maxLength);
    }

    private static void padAscii(byte[] buf, int at, int length, String text) {
        for (int i = 0; i < length; i++) {
            buf[at + i] = (byte) (i < text.length() ? text.charAt(i) : ' ');
        }
    }

    private static int be16(byte[] b, int at) {
        return (b[at] & 0xff) << 8 | (b[at + 1] & 0xff);
    }

    private static long be32(byte[] b, int at) {
        return ((long) (b[at] & 0xff) << 24) | (b[at + 1] & 0xff) << 16 | (b[at + 2] & 0xff) << 8
                | (b[at + 3] & 0xff);
    }

    private static void putBe16(byte[] b, int at, int value) {
        b[at] = (byte) (value >>> 8);
        b[at + 1] = (byte) value;
    }

    private static void putBe32(byte[] b, int at, int value) {
        b[at] = (byte) (value >>> 24);
        b[at + 1] = (byte) (value >>> 16);
        b[at + 2] = (byte) (value >>> 8);
        b[at + 3] = (byte) value;
    }
}
