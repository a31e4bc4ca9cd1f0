package io.guestdma.vhostuser;

/**
 * Numbers of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst): request codes, header
 * flags, feature bits, and the limits this back end holds a front end to.
 */
final class Protocol {
    private Protocol() {
    }

    static final int GET_FEATURES = 1;
    static final int SET_FEATURES = 2;
    static final int SET_OWNER = 3;
    static final int RESET_OWNER = 4;
    static final int SET_MEM_TABLE = 5;
    static final int SET_VRING_NUM = 8;
    static final int SET_VRING_ADDR = 9;
    static final int SET_VRING_BASE = 10;
    static final int GET_VRING_BASE = 11;
    static final int SET_VRING_KICK = 12;
    static final int SET_VRING_CALL = 13;
    static final int SET_VRING_ERR = 14;
    static final int GET_PROTOCOL_FEATURES = 15;
    static final int SET_PROTOCOL_FEATURES = 16;
    static final int GET_QUEUE_NUM = 17;
    static final int SET_VRING_ENABLE = 18;
    static final int GET_CONFIG = 24;
    static final int SET_CONFIG = 25;
    static final int RESET_DEVICE = 34;

    /** Header size: request, flags, payload size, each a little-endian u32. */
    static final int HEADER_SIZE = 12;
    /** Flags: the protocol version in the low two bits. */
    static final int VERSION = 1;
    static final int VERSION_MASK = 3;
    /** Flags: this message is a reply. */
    static final int FLAG_REPLY = 1 << 2;
    /** Flags: the sender wants an acknowledgement (REPLY_ACK). */
    static final int FLAG_NEED_REPLY = 1 << 3;

    /** Virtio feature bit the back end sets to say it speaks protocol features. */
    static final long F_PROTOCOL_FEATURES = 1L << 30;

    static final long PF_MQ = 1L;
    static final long PF_REPLY_ACK = 1L << 3;
    static final long PF_CONFIG = 1L << 9;
    static final long PF_RESET_DEVICE = 1L << 13;
    /** The protocol features offered. */
    static final long PROTOCOL_FEATURES = PF_MQ | PF_REPLY_ACK | PF_CONFIG | PF_RESET_DEVICE;

    /** The most memory regions in one SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS). */
    static final int MAX_REGIONS = 8;
    /** The most descriptors one message may carry. */
    static final int MAX_FDS = MAX_REGIONS;
    /** The largest configuration space GET/SET_CONFIG may carry (VHOST_USER_MAX_CONFIG_SIZE). */
    static final int MAX_CONFIG_SIZE = 256;
    /** The largest payload accepted: a full memory table or configuration, with room to spare. */
    static final int MAX_PAYLOAD = 4096;
    /** SET_VRING_KICK/CALL/ERR: the payload's queue index bits. */
    static final long VRING_INDEX_MASK = 0xff;
    /** SET_VRING_KICK/CALL/ERR: no descriptor comes with the message. */
    static final long VRING_NOFD = 1L << 8;

    /** {@return a request's name for messages, or its number} */
    static String name(int request) {
        return switch (request) {
            case GET_FEATURES -> "GET_FEATURES";
            case SET_FEATURES -> "SET_FEATURES";
            case SET_OWNER -> "SET_OWNER";
            case RESET_OWNER -> "RESET_OWNER";
            case SET_MEM_TABLE -> "SET_MEM_TABLE";
            case SET_VRING_NUM -> "SET_VRING_NUM";
            case SET_VRING_ADDR -> "SET_VRING_ADDR";
            case SET_VRING_BASE -> "SET_VRING_BASE";
            case GET_VRING_BASE -> "GET_VRING_BASE";
            case SET_VRING_KICK -> "SET_VRING_KICK";
            case SET_VRING_CALL -> "SET_VRING_CALL";
            case SET_VRING_ERR -> "SET_VRING_ERR";
            case GET_PROTOCOL_FEATURES -> "GET_PROTOCOL_FEATURES";
            case SET_PROTOCOL_FEATURES -> "SET_PROTOCOL_FEATURES";
            case GET_QUEUE_NUM -> "GET_QUEUE_NUM";
            case SET_VRING_ENABLE -> "SET_VRING_ENABLE";
            case GET_CONFIG -> "GET_CONFIG";
            case SET_CONFIG -> "SET_CONFIG";
            case RESET_DEVICE -> "RESET_DEVICE";
            default -> "request " + Integer.toUnsignedString(request);
        };
    }
}
