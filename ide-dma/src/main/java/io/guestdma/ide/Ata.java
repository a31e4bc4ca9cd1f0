package io.guestdma.ide;

/** ATA register bits and command codes, with QEMU's names where it has them. */
final class Ata {
    private Ata() {
    }

    static final int SECTOR_SIZE = 512;
    /** Sectors per READ/WRITE MULTIPLE block. */
    static final int MAX_MULT_SECTORS = 16;
    /** QEMU's old DMA buffer size in sectors: the COPY engine's chunk and the PIO buffer size. */
    static final int DMA_BUF_SECTORS = 256;

    // Status register
    static final int ERR_STAT = 0x01;
    static final int DRQ_STAT = 0x08;
    static final int SEEK_STAT = 0x10;
    static final int READY_STAT = 0x40;
    static final int BUSY_STAT = 0x80;

    // Error register
    static final int ABRT_ERR = 0x04;

    // Device/head register
    static final int DEV_SELECT = 0x10;
    static final int DEV_ALWAYS_ON = 0xa0;
    static final int DEV_LBA = 0x40;
    static final int DEV_HEAD = 0x0f;

    // Device control register
    static final int CTRL_HOB = 0x80;
    static final int CTRL_RESET = 0x04;
    static final int CTRL_DISABLE_IRQ = 0x02;

    // Commands
    static final int CFA_REQ_EXT_ERROR_CODE = 0x03;
    static final int WIN_DSM = 0x06;
    static final int WIN_DEVICE_RESET = 0x08;
    static final int WIN_RECAL = 0x10;
    static final int WIN_READ = 0x20;
    static final int WIN_READ_ONCE = 0x21;
    static final int WIN_READ_EXT = 0x24;
    static final int WIN_READDMA_EXT = 0x25;
    static final int WIN_READ_NATIVE_MAX_EXT = 0x27;
    static final int WIN_MULTREAD_EXT = 0x29;
    static final int WIN_WRITE = 0x30;
    static final int WIN_WRITE_ONCE = 0x31;
    static final int WIN_WRITE_EXT = 0x34;
    static final int WIN_WRITEDMA_EXT = 0x35;
    static final int WIN_MULTWRITE_EXT = 0x39;
    static final int WIN_WRITE_VERIFY = 0x3c;
    static final int WIN_VERIFY = 0x40;
    static final int WIN_VERIFY_ONCE = 0x41;
    static final int WIN_VERIFY_EXT = 0x42;
    static final int WIN_SEEK = 0x70;
    static final int WIN_DIAGNOSE = 0x90;
    static final int WIN_SPECIFY = 0x91;
    static final int WIN_STANDBYNOW2 = 0x94;
    static final int WIN_IDLEIMMEDIATE2 = 0x95;
    static final int WIN_STANDBY2 = 0x96;
    static final int WIN_SETIDLE2 = 0x97;
    static final int WIN_CHECKPOWERMODE2 = 0x98;
    static final int WIN_SLEEPNOW2 = 0x99;
    static final int WIN_PACKETCMD = 0xa0;
    static final int WIN_PIDENTIFY = 0xa1;
    static final int WIN_SMART = 0xb0;
    static final int WIN_MULTREAD = 0xc4;
    static final int WIN_MULTWRITE = 0xc5;
    static final int WIN_SETMULT = 0xc6;
    static final int WIN_READDMA = 0xc8;
    static final int WIN_READDMA_ONCE = 0xc9;
    static final int WIN_WRITEDMA = 0xca;
    static final int WIN_WRITEDMA_ONCE = 0xcb;
    static final int WIN_STANDBYNOW1 = 0xe0;
    static final int WIN_IDLEIMMEDIATE = 0xe1;
    static final int WIN_STANDBY = 0xe2;
    static final int WIN_SETIDLE1 = 0xe3;
    static final int WIN_CHECKPOWERMODE1 = 0xe5;
    static final int WIN_SLEEPNOW1 = 0xe6;
    static final int WIN_FLUSH_CACHE = 0xe7;
    static final int WIN_FLUSH_CACHE_EXT = 0xea;
    static final int WIN_IDENTIFY = 0xec;
    static final int WIN_SETFEATURES = 0xef;
    /** Also SECURITY FREEZE LOCK; QEMU lets hard disks accept it as a no-op (Windows 8 needs it). */
    static final int CFA_WEAR_LEVEL = 0xf5;
    static final int WIN_READ_NATIVE_MAX = 0xf8;

    static final int DSM_TRIM = 0x01;

    // SMART features
    static final int SMART_READ_DATA = 0xd0;
    static final int SMART_READ_THRESH = 0xd1;
    static final int SMART_ATTR_AUTOSAVE = 0xd2;
    static final int SMART_EXECUTE_OFFLINE = 0xd4;
    static final int SMART_READ_LOG = 0xd5;
    static final int SMART_ENABLE = 0xd8;
    static final int SMART_DISABLE = 0xd9;
    static final int SMART_STATUS = 0xda;
}
