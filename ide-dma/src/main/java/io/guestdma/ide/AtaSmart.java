package io.guestdma.ide;

import java.util.Arrays;

/** The SMART command (0xB0) as QEMU answers it: fixed attributes, a self-test log, no errors. */
final class AtaSmart {
    private AtaSmart() {
    }

    /** What the caller does after {@link #execute}. */
    enum Result {
        /** Complete the command now (status, interrupt). */
        DONE,
        /** The PIO buffer holds a 512-byte data block for the guest to read. */
        DATA_IN
    }

    /** Based on a Seagate ST3500418AS, as QEMU's: id, flags, hflags, value, worst, raw[6], threshold. */
    private static final int[][] ATTRIBUTES = {
        {0x01, 0x03, 0x00, 0x64, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06},
        {0x03, 0x03, 0x00, 0x64, 0x64, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
        {0x04, 0x02, 0x00, 0x64, 0x64, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14},
        {0x05, 0x03, 0x00, 0x64, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x24},
        {0x09, 0x03, 0x00, 0x64, 0x64, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
        {0x0c, 0x03, 0x00, 0x64, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
        {190, 0x03, 0x00, 0x45, 0x45, 0x1f, 0x00, 0x1f, 0x1f, 0x00, 0x00, 0x32},
    };

    static Result execute(AtaDrive s) {
        if (s.hcyl != 0xc2 || s.lcyl != 0x4f) {
            return abort(s);
        }
        if (!s.smartEnabled && s.feature != Ata.SMART_ENABLE) {
            return abort(s);
        }
        byte[] buf = s.ioBuffer;
        switch (s.feature) {
            case Ata.SMART_DISABLE -> {
                s.smartEnabled = false;
                return Result.DONE;
            }
            case Ata.SMART_ENABLE -> {
                s.smartEnabled = true;
                return Result.DONE;
            }
            case Ata.SMART_ATTR_AUTOSAVE -> {
                switch (s.sector) {
                    case 0x00 -> s.smartAutosave = false;
                    case 0xf1 -> s.smartAutosave = true;
                    default -> {
                        return abort(s);
                    }
                }
                return Result.DONE;
            }
            case Ata.SMART_STATUS -> {
                // No threshold exceeded.
                s.hcyl = 0xc2;
                s.lcyl = 0x4f;
                return Result.DONE;
            }
            case Ata.SMART_READ_THRESH -> {
                Arrays.fill(buf, 0, 512, (byte) 0);
                buf[0] = 0x01;
                for (int n = 0; n < ATTRIBUTES.length; n++) {
                    buf[2 + n * 12] = (byte) ATTRIBUTES[n][0];
                    buf[2 + 1 + n * 12] = (byte) ATTRIBUTES[n][11];
                }
                checksum(buf);
                return Result.DATA_IN;
            }
            case Ata.SMART_READ_DATA -> {
                Arrays.fill(buf, 0, 512, (byte) 0);
                buf[0] = 0x01;
                for (int n = 0; n < ATTRIBUTES.length; n++) {
                    for (int i = 0; i < 11; i++) {
                        buf[2 + i + n * 12] = (byte) ATTRIBUTES[n][i];
                    }
                }
                buf[362] = (byte) (0x02 | (s.smartAutosave ? 0x80 : 0x00));
                buf[363] = s.smartSelftestCount == 0
                        ? 0 : s.smartSelftestData[3 + (s.smartSelftestCount - 1) * 24];
                buf[364] = 0x20;
                buf[365] = 0x01;
                buf[367] = (1 << 4) | (1 << 3) | 1; // off-line collection: execute + self-test
                buf[368] = 0x03;
                buf[369] = 0x00;
                buf[370] = 0x01; // error logging supported
                buf[372] = 0x02; // minutes for a short self-test
                buf[373] = 0x36; // minutes for an extended self-test
                buf[374] = 0x01; // minutes for a conveyance self-test
                checksum(buf);
                return Result.DATA_IN;
            }
            case Ata.SMART_READ_LOG -> {
                switch (s.sector) {
                    case 0x01 -> {
                        Arrays.fill(buf, 0, 512, (byte) 0);
                        buf[0] = 0x01; // summary error log, no entries
                    }
                    case 0x06 -> {
                        Arrays.fill(buf, 0, 512, (byte) 0);
                        buf[0] = 0x01;
                        if (s.smartSelftestCount != 0) {
                            buf[508] = (byte) s.smartSelftestCount;
                            System.arraycopy(s.smartSelftestData, 2, buf, 2, 504);
                        }
                    }
                    default -> {
                        return abort(s);
                    }
                }
                checksum(buf);
                return Result.DATA_IN;
            }
            case Ata.SMART_EXECUTE_OFFLINE -> {
                switch (s.sector) {
                    case 0, 1, 2 -> {
                        s.smartSelftestCount++;
                        if (s.smartSelftestCount > 21) {
                            s.smartSelftestCount = 1;
                        }
                        int n = 2 + (s.smartSelftestCount - 1) * 24;
                        s.smartSelftestData[n] = (byte) s.sector;
                        s.smartSelftestData[n + 1] = 0x00; // passed and finished
                        s.smartSelftestData[n + 2] = 0x34; // power-on hours, low byte
                        s.smartSelftestData[n + 3] = 0x12;
                        return Result.DONE;
                    }
                    default -> {
                        return abort(s);
                    }
                }
            }
            default -> {
                return abort(s);
            }
        }
    }

    private static Result abort(AtaDrive s) {
        s.abortCommand();
        return Result.DONE;
    }

    /** Byte 511 makes the block sum to zero modulo 256. */
    private static void checksum(byte[] buf) {
        int sum = 0;
        for (int n = 0; n < 511; n++) {
            sum += buf[n];
        }
        buf[511] = (byte) (0x100 - (sum & 0xff));
    }
}
