package io.guestdma.machine;

import java.util.Objects;

/** Something a {@link PcMachine} tells its monitor about: QEMU's QMP events. */
public sealed interface MachineEvent {

    /** The machine stopped: QMP {@code stop}, or an I/O error under a stop policy. */
    record Stopped() implements MachineEvent {
    }

    /** The machine runs again after {@link Stopped}. */
    record Resumed() implements MachineEvent {
    }

    /**
     * A migration changed status (QEMU's {@code MIGRATION} event).
     *
     * @param status the status as QEMU names it, for example {@code "active"} or {@code "completed"}
     */
    record Migration(String status) implements MachineEvent {
        /**
         * Validates the event.
         *
         * @throws NullPointerException if status is null
         */
        public Migration {
            Objects.requireNonNull(status, "status");
        }
    }

    /**
     * An outgoing migration started a pass over RAM (QEMU's {@code MIGRATION_PASS} event).
     *
     * @param pass the pass number, from 1
     */
    record MigrationPass(long pass) implements MachineEvent {
    }

    /**
     * A drive's image failed a request (QEMU's {@code BLOCK_IO_ERROR}).
     *
     * @param device the drive's id ({@code -drive id=}), or "" for a {@code -blockdev} node
     * @param nodeName the block node's name, or null for a drive without a medium
     * @param operation "read" or "write"
     * @param action "report", "ignore" or "stop": what the drive's policy did
     * @param noSpace whether the host disk was full (ENOSPC); null when the drive keeps no I/O
     *     status (no stop or enospc policy), for which QEMU leaves the member out
     * @param reason the error, as strerror words it (e.g. "Input/output error")
     */
    record BlockIoError(String device, String nodeName, String operation, String action, Boolean noSpace,
                        String reason) implements MachineEvent {
        /**
         * Validates the event.
         *
         * @throws NullPointerException if a component other than nodeName is null
         */
        public BlockIoError {
            Objects.requireNonNull(device, "device");
            Objects.requireNonNull(operation, "operation");
            Objects.requireNonNull(action, "action");
            Objects.requireNonNull(reason, "reason");
        }
    }
}
