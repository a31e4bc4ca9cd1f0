package io.guestdma.conformance;

import java.io.BufferedOutputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Base64;
import java.util.Queue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A small qtest client in the spirit of QEMU's libqtest: one command line out, one reply line in,
 * asynchronous {@code IRQ raise/lower N} lines folded into {@link #irq(int)} as they pass.
 * Talks to QEMU or to our machine alike; {@link #close()} hands the target back to its owner.
 */
@SuppressWarnings("try") // close() waits for the target to exit, so it may be interrupted
final class QtestClient implements AutoCloseable {
    private static final String EOF = new String("<eof>");
    private static final long REPLY_TIMEOUT_SECONDS = 30;

    private final String name;
    private final OutputStream toTarget;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    private final boolean[] irqLevels = new boolean[256];
    private final Queue<String> pending = new ArrayDeque<>();
    private final AutoCloseable onClose;
    private final Thread reader;

    /**
     * @param name the target's name, for messages
     * @param fromTarget the target's reply stream
     * @param toTarget the target's command stream
     * @param onClose what ends the target after the command stream is closed
     */
    QtestClient(String name, InputStream fromTarget, OutputStream toTarget, AutoCloseable onClose) {
        this.name = name;
        this.toTarget = new BufferedOutputStream(toTarget, 1 << 16);
        this.onClose = onClose;
        this.reader = Thread.ofPlatform().daemon().name("qtest-reader-" + name).start(() -> {
            try (BufferedReader r = new BufferedReader(
                    new InputStreamReader(fromTarget, StandardCharsets.ISO_8859_1), 1 << 16)) {
                for (String line; (line = r.readLine()) != null; ) {
                    lines.add(line);
                }
            } catch (IOException e) {
                lines.add("<read failed: " + e + ">");
            }
            lines.add(EOF);
        });
    }

    String name() {
        return name;
    }

    /** Sends a command and returns its reply line, whatever it says. */
    String raw(String command) {
        send(command);
        drainPending();
        return reply(command);
    }

    /**
     * Sends a command whose reply must be "OK" without waiting for it: commands are processed in
     * order, so writes can be pipelined and their replies checked at the next command that reads
     * something. This saves a round trip per register write.
     */
    void post(String command) {
        send(command);
        pending.add(command);
    }

    private void send(String command) {
        try {
            toTarget.write((command + "\n").getBytes(StandardCharsets.ISO_8859_1));
        } catch (IOException e) {
            throw new UncheckedIOException(name + ": cannot send '" + command + "'", e);
        }
    }

    private void drainPending() {
        try {
            toTarget.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(name + ": cannot send commands", e);
        }
        while (!pending.isEmpty()) {
            String command = pending.poll();
            String reply = reply(command);
            if (!reply.equals("OK")) {
                throw new AssertionError(name + ": '" + command + "' answered '" + reply + "'");
            }
        }
    }

    private String reply(String command) {
        while (true) {
            String line;
            try {
                line = lines.poll(REPLY_TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted waiting for " + name, e);
            }
            if (line == null) {
                throw new AssertionError(name + ": no reply to '" + command + "' within "
                        + REPLY_TIMEOUT_SECONDS + " s");
            }
            if (line == EOF) {
                lines.add(EOF);
                throw new AssertionError(name + ": connection closed; no reply to '" + command + "'");
            }
            if (line.startsWith("IRQ raise ") || line.startsWith("IRQ lower ")) {
                irqLevels[Integer.parseInt(line.substring(10).trim())] = line.charAt(4) == 'r';
                continue;
            }
            return line;
        }
    }

    /** Sends a command that must succeed; returns what follows "OK" (empty if nothing). */
    String ok(String command) {
        String reply = raw(command);
        if (!reply.equals("OK") && !reply.startsWith("OK ")) {
            throw new AssertionError(name + ": '" + command + "' answered '" + reply + "'");
        }
        return reply.length() > 3 ? reply.substring(3) : "";
    }

    /** @return the level of an interrupt line, as of the last reply (libqtest's qtest_get_irq) */
    boolean irq(int line) {
        drainPending();
        return irqLevels[line];
    }

    void irqInterceptIn(String path) {
        ok("irq_intercept_in " + path);
    }

    void outb(int port, int value) {
        post(String.format("outb 0x%x 0x%x", port, value & 0xff));
    }

    void outw(int port, int value) {
        post(String.format("outw 0x%x 0x%x", port, value & 0xffff));
    }

    void outl(int port, int value) {
        post(String.format("outl 0x%x 0x%x", port, value));
    }

    int inb(int port) {
        return in("inb", port);
    }

    int inw(int port) {
        return in("inw", port);
    }

    int inl(int port) {
        return in("inl", port);
    }

    private int in(String command, int port) {
        return (int) Long.parseLong(ok(String.format("%s 0x%x", command, port)).substring(2), 16);
    }

    void writel(long address, int value) {
        post(String.format("writel 0x%x 0x%x", address, value));
    }

    long readq(long address) {
        return Long.parseUnsignedLong(ok(String.format("readq 0x%x", address)).substring(2), 16);
    }

    /** Reads guest memory (b64read). */
    byte[] memread(long address, int length) {
        return Base64.getDecoder().decode(ok(String.format("b64read 0x%x 0x%x", address, length)));
    }

    /** Writes guest memory (b64write). */
    void memwrite(long address, byte[] data) {
        if (data.length == 0) {
            return;
        }
        post(String.format("b64write 0x%x 0x%x %s", address, data.length,
                Base64.getEncoder().encodeToString(data)));
    }

    void memset(long address, long length, int value) {
        post(String.format("memset 0x%x 0x%x 0x%x", address, length, value & 0xff));
    }

    @Override
    public void close() throws Exception {
        try {
            drainPending();
        } finally {
            try {
                toTarget.close();
            } catch (IOException e) {
                // the target already went away
            }
            onClose.close();
            reader.join(TimeUnit.SECONDS.toMillis(10));
        }
    }
}
