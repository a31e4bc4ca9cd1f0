package io.guestdma.net;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A network backend as QEMU's {@code -netdev} option spells it, so that a command line written for
 * QEMU works unchanged:
 * <ul>
 *   <li>{@code socket,id=ID,listen=[HOST]:PORT} and {@code socket,id=ID,connect=HOST:PORT};</li>
 *   <li>{@code stream,id=ID,server=on|off,addr.type=inet,addr.host=HOST,addr.port=PORT} and
 *       {@code stream,id=ID,server=on|off,addr.type=unix,addr.path=PATH} (QEMU 7.2);</li>
 *   <li>guestdma's own {@code loopback,id=ID[,loop=on|off][,capture=FILE.pcap][,replay=FILE.pcap]}
 *       ({@link LoopbackNetBackend}).</li>
 * </ul>
 * QEMU's other socket modes (multicast, UDP, a passed file descriptor) are refused with a message
 * that says so. Values follow QEMU's option syntax: a comma inside a value is written twice.
 *
 * @param id      the netdev's id, which a NIC's {@code netdev=} property names
 * @param type    which backend
 * @param address for SOCKET and STREAM: where to listen or connect
 * @param server  for SOCKET and STREAM: listen (true) or connect (false)
 * @param loop    for LOOPBACK: whether transmitted frames come back as received
 * @param capture for LOOPBACK: the pcap file transmitted frames are written to, or null
 * @param replay  for LOOPBACK: a pcap file replayed as received frames when opened, or null
 */
public record NetdevSpec(String id, Type type, SocketAddress address, boolean server, boolean loop, Path capture,
                         Path replay) {
    /** The backends {@code -netdev} can name. */
    public enum Type {
        /** QEMU's {@code -netdev socket} (stream mode). */
        SOCKET,
        /** QEMU's {@code -netdev stream}. */
        STREAM,
        /** guestdma's loopback with pcap capture and replay. */
        LOOPBACK
    }

    /**
     * Checks the parts.
     *
     * @throws NullPointerException     if id or type is null, or address for SOCKET and STREAM
     * @throws IllegalArgumentException if id is empty
     */
    public NetdevSpec {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(type, "type");
        if (id.isEmpty()) {
            throw new IllegalArgumentException("a netdev needs a non-empty id");
        }
        if (type != Type.LOOPBACK) {
            Objects.requireNonNull(address, "address");
        }
    }

    /**
     * Parses the text after {@code -netdev}.
     *
     * @param text e.g. {@code socket,id=n0,listen=127.0.0.1:1234}
     * @return the netdev it names
     * @throws IllegalArgumentException naming the problem, in QEMU's words where QEMU has them: an
     *                                  unknown type or parameter, a missing id, none or both of
     *                                  listen and connect, a bad port, a mode we do not support
     */
    public static NetdevSpec parse(String text) {
        List<String> parts = split(text);
        if (parts.isEmpty() || parts.get(0).isEmpty() || parts.get(0).contains("=")) {
            throw new IllegalArgumentException("-netdev " + text + ": Parameter 'type' is missing");
        }
        String typeName = parts.get(0);
        Map<String, String> options = new LinkedHashMap<>();
        for (String part : parts.subList(1, parts.size())) {
            int eq = part.indexOf('=');
            String key = eq < 0 ? part : part.substring(0, eq);
            String value = eq < 0 ? "on" : part.substring(eq + 1);
            if (options.put(key, value) != null) {
                throw new IllegalArgumentException("-netdev " + text + ": Parameter '" + key + "' given twice");
            }
        }
        String id = options.remove("id");
        if (id == null || id.isEmpty()) {
            throw new IllegalArgumentException("-netdev " + text + ": Parameter 'id' is missing");
        }
        return switch (typeName) {
            case "socket" -> socket(text, id, options);
            case "stream" -> stream(text, id, options);
            case "loopback" -> loopback(text, id, options);
            case "user", "tap", "bridge", "l2tpv3", "vde", "vhost-user", "vhost-vdpa", "hubport", "dgram" ->
                    throw new IllegalArgumentException("-netdev " + text + ": netdev type '" + typeName
                            + "' is not supported by guestdma (socket, stream and loopback are)");
            default -> throw new IllegalArgumentException("-netdev " + text + ": Parameter 'type' does not accept value '"
                    + typeName + "'");
        };
    }

    private static NetdevSpec socket(String text, String id, Map<String, String> options) {
        for (String unsupported : List.of("fd", "mcast", "udp", "localaddr")) {
            if (options.containsKey(unsupported)) {
                throw new IllegalArgumentException("-netdev " + text + ": socket mode '" + unsupported
                        + "' is not supported by guestdma (listen= and connect= are)");
            }
        }
        unknown(text, options, Set.of("listen", "connect"));
        String listen = options.get("listen");
        String connect = options.get("connect");
        if ((listen == null) == (connect == null)) {
            throw new IllegalArgumentException("-netdev " + text
                    + ": exactly one of listen= and connect= is required");
        }
        boolean server = listen != null;
        return new NetdevSpec(id, Type.SOCKET, inet(text, server ? listen : connect, server), server, false, null, null);
    }

    private static NetdevSpec stream(String text, String id, Map<String, String> options) {
        unknown(text, options, Set.of("server", "addr.type", "addr.host", "addr.port", "addr.path"));
        boolean server = onOff(text, "server", options.getOrDefault("server", "off"));
        String addrType = options.get("addr.type");
        if (addrType == null) {
            throw new IllegalArgumentException("-netdev " + text + ": Parameter 'addr.type' is missing");
        }
        SocketAddress address = switch (addrType) {
            case "inet" -> {
                String host = options.get("addr.host");
                String port = options.get("addr.port");
                if (host == null || port == null) {
                    throw new IllegalArgumentException("-netdev " + text + ": Parameter 'addr."
                            + (host == null ? "host" : "port") + "' is missing");
                }
                yield new InetSocketAddress(host, port(text, port));
            }
            case "unix" -> {
                String path = options.get("addr.path");
                if (path == null || path.isEmpty()) {
                    throw new IllegalArgumentException("-netdev " + text + ": Parameter 'addr.path' is missing");
                }
                yield UnixDomainSocketAddress.of(path);
            }
            case "fd" -> throw new IllegalArgumentException("-netdev " + text
                    + ": addr.type=fd is not supported by guestdma (inet and unix are)");
            default -> throw new IllegalArgumentException("-netdev " + text + ": Parameter 'addr.type' does not accept value '"
                    + addrType + "'");
        };
        return new NetdevSpec(id, Type.STREAM, address, server, false, null, null);
    }

    private static NetdevSpec loopback(String text, String id, Map<String, String> options) {
        unknown(text, options, Set.of("loop", "capture", "replay"));
        boolean loop = onOff(text, "loop", options.getOrDefault("loop", "on"));
        String capture = options.get("capture");
        String replay = options.get("replay");
        return new NetdevSpec(id, Type.LOOPBACK, null, false, loop,
                capture == null || capture.isEmpty() ? null : Path.of(capture),
                replay == null || replay.isEmpty() ? null : Path.of(replay));
    }

    private static void unknown(String text, Map<String, String> options, Set<String> known) {
        for (String key : options.keySet()) {
            if (!known.contains(key)) {
                throw new IllegalArgumentException("-netdev " + text + ": Invalid parameter '" + key + "'");
            }
        }
    }

    private static boolean onOff(String text, String key, String value) {
        return switch (value) {
            case "on", "yes", "true" -> true;
            case "off", "no", "false" -> false;
            default -> throw new IllegalArgumentException("-netdev " + text + ": Parameter '" + key
                    + "' expects 'on' or 'off'");
        };
    }

    /** HOST:PORT; an empty host listens on every interface, as QEMU does. */
    private static InetSocketAddress inet(String text, String hostPort, boolean listen) {
        int colon = hostPort.lastIndexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException("-netdev " + text + ": '" + hostPort
                    + "' is not HOST:PORT");
        }
        String host = hostPort.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = port(text, hostPort.substring(colon + 1));
        if (host.isEmpty()) {
            if (!listen) {
                throw new IllegalArgumentException("-netdev " + text + ": connect= needs a host");
            }
            return new InetSocketAddress(port);
        }
        return new InetSocketAddress(host, port);
    }

    private static int port(String text, String port) {
        try {
            int p = Integer.parseInt(port);
            if (p >= 0 && p <= 65535) {
                return p;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException("-netdev " + text + ": '" + port + "' is not a port number");
    }

    /** Splits at single commas; a doubled comma is a comma inside a value (QEMU's option syntax). */
    private static List<String> split(String text) {
        List<String> parts = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ',') {
                if (i + 1 < text.length() && text.charAt(i + 1) == ',') {
                    current.append(',');
                    i++;
                } else {
                    parts.add(current.toString());
                    current.setLength(0);
                }
            } else {
                current.append(c);
            }
        }
        parts.add(current.toString());
        return parts;
    }

    /**
     * Opens the backend this spec names.
     *
     * @param queue     where received frames go
     * @param txTimeout for SOCKET and STREAM: how long a transmit may wait on a peer that does not read
     * @return the backend: listening, connected, or (LOOPBACK) ready, with any replay already queued
     *     as far as the queue holds it (the rest is replayed by a background thread)
     * @throws IOException if the socket cannot be bound or connected, or a pcap file cannot be
     *                     created or read
     */
    public NetBackend open(RxQueue queue, Duration txTimeout) throws IOException {
        return switch (type) {
            case SOCKET, STREAM -> server ? StreamNetBackend.listen(address, queue, txTimeout)
                    : StreamNetBackend.connect(address, queue, txTimeout);
            case LOOPBACK -> {
                LoopbackNetBackend backend = LoopbackNetBackend.create(queue, loop, capture);
                if (replay != null) {
                    PcapReader.open(replay).close(); // a bad file is an error now, not in the background
                    Thread.ofPlatform().daemon().name("guestdma-net-replay " + id).start(() -> {
                        try {
                            backend.replay(replay);
                        } catch (IOException | InterruptedException e) {
                            System.getLogger(NetdevSpec.class.getName()).log(System.Logger.Level.WARNING,
                                    "netdev " + id + ": replay of " + replay + " stopped: " + e.getMessage());
                        }
                    });
                }
                yield backend;
            }
        };
    }
}
