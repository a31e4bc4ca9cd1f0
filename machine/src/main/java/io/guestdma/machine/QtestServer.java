package io.guestdma.machine;

import io.guestdma.memory.GuestMemory;
import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * QEMU's qtest protocol (system/qtest.c) served over a pair of streams, driving a
 * {@link PcMachine}: one command per line, one reply line per command, replies formatted exactly
 * as QEMU 7.2 formats them, so libqtest-style clients cannot tell the two apart.
 *
 * <p>Commands: {@code outb/outw/outl PORT VALUE}, {@code inb/inw/inl PORT} ({@code OK 0x%04x}),
 * {@code writeb/w/l/q ADDR VALUE}, {@code readb/w/l/q ADDR} ({@code OK 0x%016x}),
 * {@code read ADDR SIZE} ({@code OK 0x} and two hex digits per byte), {@code write ADDR SIZE 0xDATA}
 * (short data is zero-filled, long data truncated), {@code b64read ADDR SIZE},
 * {@code b64write ADDR SIZE BASE64}, {@code memset ADDR SIZE BYTE}, {@code endianness}
 * ({@code OK little}), {@code irq_intercept_in ioapic}, {@code clock_step [NS]} and
 * {@code clock_set NS} (the machine's {@link VirtualClock}, firing the timers devices armed on
 * it: {@code OK NS}). Numbers are C
 * {@code strtoul} base-0 literals (decimal, 0x hex, 0 octal). Anything else is answered with
 * {@code FAIL Unknown command 'NAME'}.
 *
 * <p>After {@code irq_intercept_in ioapic}, every change of an interrupt line is reported as an
 * asynchronous line {@code IRQ raise N} or {@code IRQ lower N}; such lines are written whole,
 * never inside another reply, and always before the reply of the command that caused them (the
 * machine completes I/O inside the port access).
 *
 * <p>Where QEMU would abort on a malformed command (a missing or non-numeric argument, a port
 * above 0xffff, a zero-length {@code read}), this server answers {@code FAIL} and a reason, and
 * carries on. Blank lines are ignored. End of input ends {@link #serve()}.
 */
public final class QtestServer {
    /** The largest {@code read}, {@code b64read}, {@code write} or {@code memset} served. */
    public static final long MAX_TRANSFER = 1L << 30;
    /** The longest command line accepted, in bytes (a {@code b64write} of 96 MiB fits). */
    public static final int MAX_LINE = 128 << 20;

    private static final int CHUNK = 3 * 16384; // a multiple of 3: base64 chunks concatenate
    private static final HexFormat HEX = HexFormat.of();

    private final PcMachine machine;
    private final GuestMemory memory;
    private final InputStream in;
    private final OutputStream out;
    private final Object outputLock = new Object();
    private final boolean[] irqLevels = new boolean[256];
    private String interceptedDevice;
    private boolean interceptingInputs;

    /**
     * Creates a server; nothing is read until {@link #serve()}.
     *
     * @param machine the machine the commands drive; the server becomes its
     *     {@linkplain PcMachine#irqListener(IrqListener) interrupt listener}
     * @param in where commands come from
     * @param out where replies go
     * @throws NullPointerException if an argument is null
     */
    public QtestServer(PcMachine machine, InputStream in, OutputStream out) {
        this.machine = Objects.requireNonNull(machine, "machine");
        this.memory = machine.memory();
        this.in = Objects.requireNonNull(in, "in");
        this.out = new BufferedOutputStream(Objects.requireNonNull(out, "out"), 65536);
        machine.irqListener(this::irqChanged);
    }

    /**
     * Serves commands until end of input.
     *
     * @throws IOException if reading commands or writing replies fails
     */
    public void serve() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream(256);
        boolean tooLong = false;
        byte[] buffer = new byte[65536];
        for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
            int start = 0;
            for (int i = 0; i < n; i++) {
                if (buffer[i] != '\n') {
                    continue;
                }
                tooLong |= !append(line, buffer, start, i - start);
                if (tooLong) {
                    send("FAIL command line longer than " + MAX_LINE + " bytes\n");
                } else {
                    execute(line.toString(StandardCharsets.ISO_8859_1));
                }
                line.reset();
                tooLong = false;
                start = i + 1;
            }
            tooLong |= !append(line, buffer, start, n - start);
        }
        if (line.size() > 0 && !tooLong) {
            execute(line.toString(StandardCharsets.ISO_8859_1)); // a last command without newline
        }
    }

    /** Appends unless the line would exceed {@link #MAX_LINE}; returns false if it would. */
    private static boolean append(ByteArrayOutputStream line, byte[] bytes, int offset, int length) {
        if ((long) line.size() + length > MAX_LINE) {
            return false;
        }
        line.write(bytes, offset, length);
        return true;
    }

    private void execute(String line) throws IOException {
        List<String> words = new ArrayList<>();
        for (String w : line.strip().split("[ \t\r]+")) {
            if (!w.isEmpty()) {
                words.add(w);
            }
        }
        if (words.isEmpty()) {
            return;
        }
        try {
            run(words);
        } catch (BadCommand e) {
            send("FAIL " + e.getMessage() + "\n");
        } catch (RuntimeException e) {
            // A device refusing an access must not take the server down; report it instead.
            send("FAIL " + words.get(0) + ": " + e + "\n");
        }
    }

    private void run(List<String> w) throws IOException {
        String command = w.get(0);
        switch (command) {
            case "outb", "outw", "outl" -> {
                int port = port(w);
                long value = number(w, 2, "value");
                machine.ports().write(port, width(command.charAt(3)), (int) value);
                send("OK\n");
            }
            case "inb", "inw", "inl" -> {
                int port = port(w);
                int value = machine.ports().read(port, width(command.charAt(2)));
                send(String.format("OK 0x%04x\n", value));
            }
            case "writeb", "writew", "writel", "writeq" -> {
                long address = number(w, 1, "address");
                long value = number(w, 2, "value");
                int size = width(command.charAt(5));
                byte[] bytes = new byte[size];
                for (int i = 0; i < size; i++) {
                    bytes[i] = (byte) (value >>> (8 * i));
                }
                memory.write(address, bytes, 0, size);
                send("OK\n");
            }
            case "readb", "readw", "readl", "readq" -> {
                long address = number(w, 1, "address");
                int size = width(command.charAt(4));
                byte[] bytes = new byte[size];
                memory.read(address, bytes, 0, size);
                long value = 0;
                for (int i = 0; i < size; i++) {
                    value |= (bytes[i] & 0xffL) << (8 * i);
                }
                send(String.format("OK 0x%016x\n", value));
            }
            case "read" -> {
                long address = number(w, 1, "address");
                long size = transferSize(w);
                if (size == 0) {
                    throw new BadCommand("read: size must not be 0");
                }
                streamRead(address, size, false);
            }
            case "b64read" -> streamRead(number(w, 1, "address"), transferSize(w), true);
            case "write" -> {
                long address = number(w, 1, "address");
                long size = transferSize(w);
                String data = word(w, 3, "data");
                if (data.length() < 3) {
                    send("ERR invalid argument size\n"); // QEMU's reply, verbatim
                    return;
                }
                if (!data.startsWith("0x") && !data.startsWith("0X")) {
                    throw new BadCommand("write: data must be hex digits after 0x");
                }
                writePadded(address, size, hexPrefix(data.substring(2), size));
                send("OK\n");
            }
            case "b64write" -> {
                long address = number(w, 1, "address");
                long size = transferSize(w);
                String data = word(w, 3, "data");
                if (data.length() < 3) {
                    send("ERR invalid argument size\n");
                    return;
                }
                byte[] decoded;
                try {
                    decoded = Base64.getMimeDecoder().decode(data);
                } catch (IllegalArgumentException e) {
                    throw new BadCommand("b64write: data is not base64: " + e.getMessage());
                }
                writePadded(address, size, decoded);
                send("OK\n");
            }
            case "memset" -> {
                long address = number(w, 1, "address");
                long size = transferSize(w);
                fill(address, size, (byte) number(w, 3, "value"));
                send("OK\n");
            }
            case "endianness" -> send("OK little\n");
            case "irq_intercept_in", "irq_intercept_out" -> intercept(command, word(w, 1, "QOM path"));
            case "clock_step" -> {
                VirtualClock clock = machine.clock();
                long now = w.size() > 1 ? clock.step(number(w, 1, "nanoseconds")) : clock.stepToNextDeadline();
                send("OK " + now + "\n");
            }
            case "clock_set" -> send("OK " + machine.clock().advanceTo(number(w, 1, "nanoseconds")) + "\n");
            default -> send("FAIL Unknown command '" + command + "'\n");
        }
    }

    private void intercept(String command, String path) throws IOException {
        String device = switch (path) {
            case "ioapic" -> "ioapic"; // QEMU resolves this partial QOM path
            default -> null;
        };
        if (device == null) {
            send("FAIL Unknown device\n");
            return;
        }
        settleInterrupts();
        // The choice and its reply under one hold of the lock: an IRQ line is reported after the
        // reply that turned interception on, never between the two.
        synchronized (outputLock) {
            if (interceptedDevice == null) {
                interceptedDevice = device;
                // The IOAPIC's pins are inputs: intercepting its outputs catches nothing, and then
                // (as in QEMU) a later irq_intercept_in of the same device is a no-op.
                interceptingInputs = command.equals("irq_intercept_in");
            } else if (!interceptedDevice.equals(device)) {
                writeReply("FAIL IRQ intercept already enabled\n");
                return;
            }
            writeReply("OK\n");
        }
    }

    private void irqChanged(int line, boolean level) {
        synchronized (outputLock) {
            if (!interceptingInputs || line < 0 || line >= irqLevels.length || irqLevels[line] == level) {
                return;
            }
            irqLevels[line] = level;
            try {
                write("IRQ " + (level ? "raise" : "lower") + " " + line + "\n");
                out.flush();
            } catch (IOException e) {
                // The client is gone; serve() notices on its next read or reply.
            }
        }
    }

    /** Streams a read reply: guest memory is read and encoded chunk by chunk, under the lock. */
    private void streamRead(long address, long size, boolean base64) throws IOException {
        settleInterrupts();
        byte[] buffer = new byte[(int) Math.min(size, CHUNK)];
        synchronized (outputLock) {
            write(base64 ? "OK " : "OK 0x");
            for (long done = 0; done < size; ) {
                int n = (int) Math.min(buffer.length, size - done);
                memory.read(address + done, buffer, 0, n);
                byte[] chunk = n == buffer.length ? buffer : Arrays.copyOf(buffer, n);
                write(base64 ? Base64.getEncoder().encodeToString(chunk) : HEX.formatHex(chunk));
                done += n;
            }
            write("\n");
            out.flush();
        }
    }

    /** Writes {@code size} bytes: {@code data}, truncated or followed by zeros. */
    private void writePadded(long address, long size, byte[] data) {
        int n = (int) Math.min(size, data.length);
        memory.write(address, data, 0, n);
        fill(address + n, size - n, (byte) 0);
    }

    private void fill(long address, long size, byte pattern) {
        byte[] chunk = new byte[(int) Math.min(size, CHUNK)];
        Arrays.fill(chunk, pattern);
        for (long done = 0; done < size; ) {
            int n = (int) Math.min(chunk.length, size - done);
            memory.write(address + done, chunk, 0, n);
            done += n;
        }
    }

    /** QEMU decodes byte i from hex digits 2i and 2i+1 when both exist, else stores 0. */
    private static byte[] hexPrefix(String digits, long size) {
        int n = (int) Math.min(size, digits.length() / 2);
        byte[] bytes = new byte[n];
        for (int i = 0; i < n; i++) {
            int hi = Character.digit(digits.charAt(2 * i), 16);
            int lo = Character.digit(digits.charAt(2 * i + 1), 16);
            if (hi < 0 || lo < 0) {
                throw new BadCommand("write: '" + digits.substring(2 * i, 2 * i + 2)
                        + "' is not a hex byte");
            }
            bytes[i] = (byte) (hi << 4 | lo);
        }
        return bytes;
    }

    private void send(String reply) throws IOException {
        settleInterrupts();
        synchronized (outputLock) {
            writeReply(reply);
        }
    }

    /** Writes a whole reply; the caller holds the output lock. */
    private void writeReply(String reply) throws IOException {
        write(reply);
        out.flush();
    }

    /**
     * Waits until the IDE controller has handed every interrupt change so far to its lines, so
     * that an {@code IRQ} line an access caused is written before the access's reply even when
     * another thread (a monitor's {@code qemu-io resume}, an I/O completion) was delivering at the
     * time. Called without the output lock, which the delivering thread takes to write its line.
     */
    private void settleInterrupts() throws IOException {
        try {
            machine.ide().awaitInterruptsDelivered();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while interrupts were delivered");
        }
    }

    private void write(String text) throws IOException {
        out.write(text.getBytes(StandardCharsets.ISO_8859_1));
    }

    private static int width(char suffix) {
        return switch (suffix) {
            case 'b' -> 1;
            case 'w' -> 2;
            case 'l' -> 4;
            default -> 8;
        };
    }

    private static int port(List<String> w) {
        long port = number(w, 1, "port");
        if (port < 0 || port > 0xffff) {
            throw new BadCommand(w.get(0) + ": port " + w.get(1) + " is outside 0-0xffff");
        }
        return (int) port;
    }

    private static long transferSize(List<String> w) {
        long size = number(w, 2, "size");
        if (size < 0 || size > MAX_TRANSFER) {
            throw new BadCommand(w.get(0) + ": size " + w.get(2) + " is above the limit of "
                    + MAX_TRANSFER + " bytes");
        }
        return size;
    }

    private static String word(List<String> w, int index, String what) {
        if (index >= w.size()) {
            throw new BadCommand(w.get(0) + ": missing " + what);
        }
        return w.get(index);
    }

    private static long number(List<String> w, int index, String what) {
        String text = word(w, index, what);
        try {
            return parseNumber(text);
        } catch (NumberFormatException e) {
            throw new BadCommand(w.get(0) + ": " + what + " '" + text + "' is not a number");
        }
    }

    /**
     * C's strtoul with base 0, as QEMU's qemu_strtou64 applies it: optional sign, then "0x" hex,
     * "0" octal or decimal; the whole word must be consumed and fit in 64 bits; a minus sign
     * negates modulo 2^64.
     */
    static long parseNumber(String text) {
        String s = text;
        boolean negative = false;
        if (s.startsWith("-") || s.startsWith("+")) {
            negative = s.charAt(0) == '-';
            s = s.substring(1);
        }
        int radix = 10;
        String lower = s.toLowerCase(Locale.ROOT);
        if (lower.startsWith("0x") && s.length() > 2) {
            radix = 16;
            s = s.substring(2);
        } else if (s.length() > 1 && s.charAt(0) == '0') {
            radix = 8;
            s = s.substring(1);
        }
        if (s.isEmpty() || !Character.isLetterOrDigit(s.charAt(0))) {
            throw new NumberFormatException(text);
        }
        long value = Long.parseUnsignedLong(s, radix);
        return negative ? -value : value;
    }

    /** A malformed command: answered with FAIL and the message. */
    private static final class BadCommand extends RuntimeException {
        private static final long serialVersionUID = 1L;

        BadCommand(String message) {
            super(message, null, false, false);
        }
    }
}
