package io.guestdma.machine;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * A QMP monitor (QEMU's JSON control protocol, {@code -mon chardev=ID,mode=control}) for a
 * {@link PcMachine}, with the commands and message shapes of QEMU 7.2 that libqtest and the IDE
 * tests use: the greeting, {@code qmp_capabilities}, {@code query-status}, {@code stop} and
 * {@code cont} (events STOP and RESUME; the IDE controller pauses and resumes its I/O, and
 * {@code cont} retries a request an I/O error under {@code werror/rerror=stop} held; such an
 * error stops the machine with BLOCK_IO_ERROR and STOP events), {@code human-monitor-command}
 * (see {@link HumanMonitor}),
 * {@code system_reset} (event RESET), {@code quit} (event SHUTDOWN, then the machine ends), and live
 * migration ({@link MachineMigration}): {@code migrate} with {@code uri}, {@code query-migrate},
 * {@code migrate_cancel}, {@code migrate-set-parameters} and {@code query-migrate-parameters} with
 * {@code max-bandwidth} and {@code downtime-limit}, events MIGRATION and MIGRATION_PASS.
 * Anything else gets QEMU's {@code CommandNotFound} error; input that is not a JSON object with
 * {@code execute} gets a {@code GenericError}. Replies carry the request's {@code id}. Messages end
 * with CR LF as QEMU's do.
 *
 * <p>JSON is read and written with Jackson. After malformed JSON the monitor reports the error and
 * starts parsing afresh from the next bytes (QEMU's lexer resynchronises similarly).
 */
public final class QmpMonitor {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private final PcMachine machine;
    private final InputStream in;
    private final OutputStream out;
    private final Runnable quit;
    private final HumanMonitor human;
    private volatile boolean negotiated;

    /**
     * Creates the monitor; nothing is sent before {@link #serve}.
     *
     * @param machine the machine it controls
     * @param in the client's messages
     * @param out the replies and events
     * @param quit what {@code quit} does after the reply and the SHUTDOWN event (end the process)
     * @param console where {@code human-monitor-command "qemu-io ..."} prints, as QEMU prints on its
     *     standard output (which must not be the qtest channel)
     * @throws NullPointerException if an argument is null
     */
    public QmpMonitor(PcMachine machine, InputStream in, OutputStream out, Runnable quit,
                      java.io.PrintStream console) {
        this.machine = Objects.requireNonNull(machine, "machine");
        this.in = Objects.requireNonNull(in, "in");
        this.out = Objects.requireNonNull(out, "out");
        this.quit = Objects.requireNonNull(quit, "quit");
        this.human = new HumanMonitor(machine, console);
        machine.eventListener(this::machineEvent);
    }

    /** QEMU's shapes for the machine's events; none reach a client still negotiating. */
    private void machineEvent(MachineEvent e) {
        if (!negotiated) {
            return;
        }
        ObjectNode message = switch (e) {
            case MachineEvent.Stopped s -> event("STOP", null);
            case MachineEvent.Resumed r -> event("RESUME", null);
            case MachineEvent.Migration m -> event("MIGRATION", NODES.objectNode().put("status", m.status()));
            case MachineEvent.MigrationPass p -> event("MIGRATION_PASS", NODES.objectNode().put("pass", p.pass()));
            case MachineEvent.BlockIoError b -> {
                ObjectNode data = NODES.objectNode();
                data.put("device", b.device());
                if (b.noSpace() != null) {
                    data.put("nospace", b.noSpace());
                }
                if (b.nodeName() != null) {
                    data.put("node-name", b.nodeName());
                }
                data.put("reason", b.reason());
                data.put("operation", b.operation());
                data.put("action", b.action());
                yield event("BLOCK_IO_ERROR", data);
            }
        };
        try {
            send(message);
        } catch (IOException ex) {
            // the client went away; the machine goes on without it, as QEMU's does
        }
    }

    /**
     * Sends the greeting and answers commands until the client closes the connection or quits.
     *
     * @throws IOException if the connection fails
     */
    public void serve() throws IOException {
        ObjectNode greeting = NODES.objectNode();
        ObjectNode qmp = greeting.putObject("QMP");
        ObjectNode version = qmp.putObject("version");
        version.putObject("qemu").put("micro", 0).put("minor", 2).put("major", 7);
        version.put("package", "guestdma");
        qmp.putArray("capabilities").add("oob");
        send(greeting);
        while (true) {
            JsonParser parser = JSON.createParser(in);
            try {
                while (true) {
                    JsonNode request = parser.readValueAsTree();
                    if (request == null) {
                        return; // end of input
                    }
                    if (!handle(request)) {
                        return;
                    }
                }
            } catch (JsonProcessingException e) {
                send(error(null, "GenericError", "JSON parse error, " + e.getOriginalMessage()));
            }
        }
    }

    /** @return false after quit */
    private boolean handle(JsonNode request) throws IOException {
        JsonNode id = request.isObject() ? request.get("id") : null;
        JsonNode execute = request.isObject() ? request.get("execute") : null;
        if (execute == null || !execute.isTextual()) {
            send(error(id, "GenericError", request.isObject()
                    ? "QMP input lacks member 'execute'" : "QMP input must be a JSON object"));
            return true;
        }
        String command = execute.asText();
        if (!negotiated) {
            if (command.equals("qmp_capabilities")) {
                negotiated = true;
                send(ok(id, NODES.objectNode()));
            } else {
                send(error(id, "CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'"));
            }
            return true;
        }
        switch (command) {
            case "qmp_capabilities" -> send(error(id, "CommandNotFound",
                    "Capabilities negotiation is already complete, command ignored"));
            case "query-status" -> {
                String state = machine.runState();
                ObjectNode status = NODES.objectNode();
                status.put("status", state);
                status.put("singlestep", false);
                status.put("running", state.equals("running"));
                send(ok(id, status));
            }
            case "stop" -> {
                machine.stop();
                send(ok(id, NODES.objectNode()));
            }
            case "cont" -> {
                machine.cont();
                send(ok(id, NODES.objectNode()));
            }
            case "migrate" -> {
                JsonNode uri = request.path("arguments").get("uri");
                if (uri == null || !uri.isTextual()) {
                    send(error(id, "GenericError", "Parameter 'uri' is missing"));
                    return true;
                }
                try {
                    machine.migration().migrate(uri.asText());
                    send(ok(id, NODES.objectNode()));
                } catch (IllegalArgumentException | IllegalStateException e) {
                    send(error(id, "GenericError", e.getMessage()));
                }
            }
            case "query-migrate" -> send(ok(id, migrationInfo(machine.migration().stats())));
            case "migrate_cancel" -> {
                machine.migration().cancel();
                send(ok(id, NODES.objectNode()));
            }
            case "migrate-set-parameters" -> {
                JsonNode arguments = request.path("arguments");
                java.util.Iterator<String> names = arguments.fieldNames();
                while (names.hasNext()) {
                    String name = names.next();
                    if (!name.equals("max-bandwidth") && !name.equals("downtime-limit")) {
                        send(error(id, "GenericError", "Parameter '" + name + "' is unexpected"));
                        return true;
                    }
                }
                try {
                    machine.migration().setParameters(longArgument(arguments, "max-bandwidth"),
                            longArgument(arguments, "downtime-limit"));
                    send(ok(id, NODES.objectNode()));
                } catch (IllegalArgumentException e) {
                    send(error(id, "GenericError", e.getMessage()));
                }
            }
            case "query-migrate-parameters" -> {
                io.guestdma.migration.MigrationParameters p = machine.migration().parameters();
                send(ok(id, NODES.objectNode().put("max-bandwidth", p.maxBandwidth())
                        .put("downtime-limit", p.downtimeLimitMs())));
            }
            case "human-monitor-command" -> {
                JsonNode arguments = request.get("arguments");
                JsonNode line = arguments == null ? null : arguments.get("command-line");
                if (line == null || !line.isTextual()) {
                    send(error(id, "GenericError", "Parameter 'command-line' is missing"));
                } else {
                    send(ok(id, NODES.textNode(human.execute(line.asText()))));
                }
            }
            case "system_reset" -> {
                // QEMU 7.2 under qtest resets before it answers: the event comes first
                machine.reset();
                send(event("RESET", NODES.objectNode().put("guest", false).put("reason", "host-qmp-system-reset")));
                send(ok(id, NODES.objectNode()));
            }
            case "quit" -> {
                send(ok(id, NODES.objectNode()));
                send(event("SHUTDOWN", NODES.objectNode().put("guest", false).put("reason", "host-qmp-quit")));
                quit.run();
                return false;
            }
            default -> send(error(id, "CommandNotFound", "The command " + command + " has not been found"));
        }
        return true;
    }

    /** An integer argument, or null when absent; anything but a non-negative integer is refused. */
    private static Long longArgument(JsonNode arguments, String name) {
        JsonNode value = arguments.get(name);
        if (value == null) {
            return null;
        }
        if (!value.canConvertToLong() || !value.isIntegralNumber()) {
            throw new IllegalArgumentException("Parameter '" + name + "' expects an integer");
        }
        return value.asLong();
    }

    /** QEMU 7.2's MigrationInfo: nothing before the first migration, ram figures while active or completed. */
    private static ObjectNode migrationInfo(io.guestdma.migration.MigrationStats s) {
        ObjectNode info = NODES.objectNode();
        if (s.status() == io.guestdma.migration.MigrationStatus.NONE) {
            return info;
        }
        info.put("status", s.status().qapiName());
        info.put("total-time", s.totalTimeMs());
        switch (s.status()) {
            case ACTIVE, COMPLETED -> {
                info.put("setup-time", s.setupTimeMs());
                if (s.status() == io.guestdma.migration.MigrationStatus.ACTIVE) {
                    info.put("expected-downtime", s.expectedDowntimeMs());
                } else if (s.downtimeMs() >= 0) {
                    info.put("downtime", s.downtimeMs());
                }
                double seconds = Math.max(1, s.totalTimeMs()) / 1000.0;
                info.putObject("ram")
                        .put("transferred", s.transferredBytes())
                        .put("remaining", s.remainingBytes())
                        .put("total", s.totalBytes())
                        .put("duplicate", s.duplicatePages())
                        .put("normal", s.normalPages())
                        .put("normal-bytes", s.normalPages() * 4096)
                        .put("dirty-pages-rate", s.dirtyPagesRate())
                        .put("mbps", s.transferredBytes() * 8 / 1e6 / seconds)
                        .put("dirty-sync-count", s.dirtySyncCount())
                        .put("page-size", 4096)
                        .put("pages-per-second", (long) ((s.duplicatePages() + s.normalPages()) / seconds));
            }
            case FAILED -> {
                if (s.error() != null) {
                    info.put("error-desc", s.error());
                }
            }
            default -> { }
        }
        return info;
    }

    private static ObjectNode ok(JsonNode id, JsonNode value) {
        ObjectNode reply = NODES.objectNode();
        reply.set("return", value);
        if (id != null) {
            reply.set("id", id);
        }
        return reply;
    }

    private static ObjectNode error(JsonNode id, String errorClass, String description) {
        ObjectNode reply = NODES.objectNode();
        if (id != null) {
            reply.set("id", id);
        }
        reply.putObject("error").put("class", errorClass).put("desc", description);
        return reply;
    }

    private static ObjectNode event(String name, ObjectNode data) {
        long micros = System.currentTimeMillis() * 1000 + (System.nanoTime() / 1000) % 1000;
        ObjectNode event = NODES.objectNode();
        event.putObject("timestamp").put("seconds", micros / 1_000_000).put("microseconds", micros % 1_000_000);
        event.put("event", name);
        if (data != null) {
            event.set("data", data);
        }
        return event;
    }

    private synchronized void send(JsonNode message) throws IOException {
        out.write((JSON.writeValueAsString(message) + "\r\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }
}
