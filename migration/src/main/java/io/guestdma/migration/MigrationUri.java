package io.guestdma.migration;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Where a migration stream goes to or comes from, in QEMU's URI syntax: {@code tcp:HOST:PORT},
 * {@code unix:PATH} or {@code file:PATH} (a snapshot on disk). An IPv6 host is written in
 * brackets: {@code tcp:[::1]:4444}.
 */
public sealed interface MigrationUri {

    /**
     * A TCP endpoint.
     *
     * @param host a host name or address literal (without brackets)
     * @param port 0..65535; 0 only when listening, for a port of the kernel's choice
     */
    record Tcp(String host, int port) implements MigrationUri {
        /**
         * Checks the components.
         *
         * @throws IllegalArgumentException if the host is empty or the port is out of range
         */
        public Tcp {
            Objects.requireNonNull(host, "host");
            if (host.isEmpty() || port < 0 || port > 65535) {
                throw new IllegalArgumentException("bad TCP endpoint " + host + ":" + port);
            }
        }

        /** {@return the endpoint as a socket address, resolving the host name} */
        public SocketAddress socketAddress() {
            return new InetSocketAddress(host, port);
        }

        @Override
        public String toString() {
            return "tcp:" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
        }
    }

    /**
     * A Unix-domain stream socket.
     *
     * @param path the socket's path
     */
    record Unix(Path path) implements MigrationUri {
        /**
         * Checks the component.
         *
         * @throws NullPointerException if path is null
         */
        public Unix {
            Objects.requireNonNull(path, "path");
        }

        /** {@return the endpoint as a socket address} */
        public SocketAddress socketAddress() {
            return UnixDomainSocketAddress.of(path);
        }

        @Override
        public String toString() {
            return "unix:" + path;
        }
    }

    /**
     * A regular file: the source writes the stream into it (replacing it), the destination reads it.
     *
     * @param path the file
     */
    record File(Path path) implements MigrationUri {
        /**
         * Checks the component.
         *
         * @throws NullPointerException if path is null
         */
        public File {
            Objects.requireNonNull(path, "path");
        }

        @Override
        public String toString() {
            return "file:" + path;
        }
    }

    /**
     * Parses a URI.
     *
     * @param uri {@code tcp:HOST:PORT}, {@code unix:PATH} or {@code file:PATH}
     * @return the endpoint
     * @throws IllegalArgumentException naming the URI and what is wrong with it (unknown scheme,
     *     missing path or port, port out of range)
     */
    static MigrationUri parse(String uri) {
        Objects.requireNonNull(uri, "uri");
        int colon = uri.indexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException("migration URI '" + uri + "' has no scheme (tcp:, unix: or file:)");
        }
        String rest = uri.substring(colon + 1);
        return switch (uri.substring(0, colon)) {
            case "tcp" -> parseTcp(uri, rest);
            case "unix" -> new Unix(nonEmptyPath(uri, rest));
            case "file" -> new File(nonEmptyPath(uri, rest));
            default -> throw new IllegalArgumentException("migration URI '" + uri
                    + "': unknown scheme '" + uri.substring(0, colon) + "' (tcp:, unix: or file:)");
        };
    }

    private static Path nonEmptyPath(String uri, String path) {
        if (path.isEmpty()) {
            throw new IllegalArgumentException("migration URI '" + uri + "' has an empty path");
        }
        return Path.of(path);
    }

    private static Tcp parseTcp(String uri, String rest) {
        int portColon = rest.lastIndexOf(':');
        if (portColon <= 0) {
            throw new IllegalArgumentException("migration URI '" + uri + "' needs tcp:HOST:PORT");
        }
        String host = rest.substring(0, portColon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(rest.substring(portColon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("migration URI '" + uri + "': port is not a number", e);
        }
        if (host.isEmpty() || port < 0 || port > 65535) {
            throw new IllegalArgumentException("migration URI '" + uri + "': bad host or port");
        }
        return new Tcp(host, port);
    }
}
