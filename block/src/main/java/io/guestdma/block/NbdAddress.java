package io.guestdma.block;

import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.UnixDomainSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Objects;

/**
 * An NBD export: where the server listens and which export to ask for, as QEMU spells it.
 *
 * <p>Accepted forms ({@link #parse}):
 * <ul>
 *   <li>{@code nbd://HOST[:PORT][/EXPORT]} and {@code nbd+tcp://...}: TCP, port 10809 by default,
 *       IPv6 literals in brackets ({@code nbd://[::1]:10809/disk});</li>
 *   <li>{@code nbd+unix:///[EXPORT]?socket=PATH}: a Unix-domain socket;</li>
 *   <li>QEMU's older {@code nbd:HOST:PORT[:exportname=EXPORT]} and
 *       {@code nbd:unix:PATH[:exportname=EXPORT]}.</li>
 * </ul>
 * An empty export name asks for the server's default export. The export name in a URI path is
 * percent-decoded. TLS ({@code nbds://}) is not supported and is refused with a clear error
 * rather than silently connecting in plain text.
 */
public sealed interface NbdAddress extends ImageLocation permits NbdAddress.Tcp, NbdAddress.Unix {
    /** The IANA port for NBD, used when a TCP address names none. */
    int DEFAULT_PORT = 10809;

    /** The longest export name the protocol allows, in UTF-8 bytes. */
    int MAX_EXPORT_BYTES = 4096;

    /** {@return the export name; empty for the server's default export} */
    String export();

    /**
     * {@return the socket address to connect to; a TCP host name is resolved now}
     */
    SocketAddress socketAddress();

    /**
     * An export reached over TCP.
     *
     * @param host   the server's host name or IP literal (IPv6 without brackets)
     * @param port   1 to 65535
     * @param export the export name, at most {@value #MAX_EXPORT_BYTES} UTF-8 bytes, no NUL
     */
    record Tcp(String host, int port, String export) implements NbdAddress {
        /**
         * Checks the address.
         *
         * @throws IllegalArgumentException if the host is empty, the port outside 1..65535, or the
         *                                  export name too long or containing NUL
         * @throws NullPointerException     if host or export is null
         */
        public Tcp {
            Objects.requireNonNull(host, "host");
            Objects.requireNonNull(export, "export");
            if (host.isEmpty()) {
                throw new IllegalArgumentException("an NBD TCP address needs a host");
            }
            if (port < 1 || port > 65535) {
                throw new IllegalArgumentException("NBD port must be 1..65535, was " + port);
            }
            checkExport(export);
        }

        @Override
        public SocketAddress socketAddress() {
            return new InetSocketAddress(host, port);
        }

        /** {@return the address as an {@code nbd://} URI that {@link #parse} reads back} */
        @Override
        public String toString() {
            try {
                return new URI("nbd", null, host, port, "/" + export, null, null).toASCIIString();
            } catch (URISyntaxException e) {
                return "nbd://" + host + ":" + port + "/" + export;
            }
        }
    }

    /**
     * An export reached over a Unix-domain socket.
     *
     * @param socket the socket's path
     * @param export the export name, at most {@value #MAX_EXPORT_BYTES} UTF-8 bytes, no NUL
     */
    record Unix(Path socket, String export) implements NbdAddress {
        /**
         * Checks the address.
         *
         * @throws IllegalArgumentException if the export name is too long or contains NUL
         * @throws NullPointerException     if socket or export is null
         */
        public Unix {
            Objects.requireNonNull(socket, "socket");
            Objects.requireNonNull(export, "export");
            checkExport(export);
        }

        @Override
        public SocketAddress socketAddress() {
            return UnixDomainSocketAddress.of(socket);
        }

        /** {@return the address as an {@code nbd+unix://} URI that {@link #parse} reads back} */
        @Override
        public String toString() {
            try {
                return new URI("nbd+unix", "", "/" + export, "socket=" + socket, null).toASCIIString();
            } catch (URISyntaxException e) {
                return "nbd+unix:///" + export + "?socket=" + socket;
            }
        }
    }

    private static void checkExport(String export) {
        if (export.indexOf('\0') >= 0) {
            throw new IllegalArgumentException("an NBD export name must not contain NUL");
        }
        if (export.getBytes(StandardCharsets.UTF_8).length > MAX_EXPORT_BYTES) {
            throw new IllegalArgumentException("an NBD export name may have at most " + MAX_EXPORT_BYTES + " bytes");
        }
    }

    /**
     * {@return whether it uses an NBD scheme, so that {@link #parse} (not a file path) applies}
     *
     * @param text an image location as the user wrote it
     */
    static boolean looksLikeNbd(String text) {
        String lower = text.toLowerCase(Locale.ROOT);
        return lower.startsWith("nbd:") || lower.startsWith("nbd+") || lower.startsWith("nbds:")
                || lower.startsWith("nbds+");
    }

    /**
     * Parses an NBD address in one of the forms listed in the type's description.
     *
     * @param text the address
     * @return the address
     * @throws IllegalArgumentException naming what is wrong, if {@code text} is not an NBD address
     *                                  in a supported form (unknown scheme, TLS, missing host or
     *                                  socket, bad port, user info, fragment, unknown query
     *                                  parameters)
     * @throws NullPointerException     if {@code text} is null
     */
    static NbdAddress parse(String text) {
        Objects.requireNonNull(text, "text");
        String lower = text.toLowerCase(Locale.ROOT);
        if (lower.startsWith("nbds")) {
            throw bad(text, "TLS (nbds://) is not supported; use nbd:// or nbd+unix://");
        }
        if (lower.startsWith("nbd:") && !lower.startsWith("nbd://")) {
            return parseLegacy(text);
        }
        URI uri;
        try {
            uri = new URI(text);
        } catch (URISyntaxException e) {
            throw bad(text, e.getReason() + (e.getIndex() >= 0 ? " at index " + e.getIndex() : ""));
        }
        String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
        boolean unix = switch (scheme) {
            case "nbd", "nbd+tcp" -> false;
            case "nbd+unix" -> true;
            default -> throw bad(text, "unknown scheme '" + scheme + "' (use nbd, nbd+tcp or nbd+unix)");
        };
        if (uri.isOpaque()) {
            throw bad(text, "expected " + scheme + "://...");
        }
        if (uri.getRawFragment() != null) {
            throw bad(text, "a fragment (#...) is not allowed");
        }
        if (uri.getRawUserInfo() != null) {
            throw bad(text, "user information (user@) is not allowed");
        }
        String export = exportFromPath(text, uri.getPath());
        if (unix) {
            if (uri.getRawAuthority() != null && !uri.getRawAuthority().isEmpty()) {
                throw bad(text, "nbd+unix takes no host; write nbd+unix:///EXPORT?socket=PATH");
            }
            String query = uri.getQuery();
            if (query == null || !query.startsWith("socket=") || query.length() == "socket=".length()) {
                throw bad(text, "nbd+unix needs ?socket=PATH");
            }
            if (query.indexOf('&') >= 0) {
                throw bad(text, "only the socket= parameter is allowed");
            }
            return new Unix(path(text, query.substring("socket=".length())), export);
        }
        if (uri.getRawQuery() != null) {
            throw bad(text, "nbd:// takes no parameters (socket= belongs to nbd+unix://)");
        }
        String host = uri.getHost();
        if (host == null) {
            throw bad(text, uri.getRawAuthority() == null || uri.getRawAuthority().isEmpty()
                    ? "a host is required (nbd://HOST[:PORT]/EXPORT)"
                    : "'" + uri.getRawAuthority() + "' is not a valid host[:port]");
        }
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port = uri.getPort() < 0 ? DEFAULT_PORT : uri.getPort();
        if (port < 1 || port > 65535) {
            throw bad(text, "port must be 1..65535");
        }
        return new Tcp(host, port, export);
    }

    private static String exportFromPath(String text, String path) {
        if (path == null || path.isEmpty()) {
            return "";
        }
        if (path.charAt(0) != '/') {
            throw bad(text, "the export name must follow a '/'");
        }
        try {
            checkExport(path.substring(1));
        } catch (IllegalArgumentException e) {
            throw bad(text, e.getMessage());
        }
        return path.substring(1);
    }

    private static Path path(String text, String socket) {
        try {
            return Path.of(socket);
        } catch (InvalidPathException e) {
            throw bad(text, "socket path: " + e.getReason());
        }
    }

    /** QEMU's pre-URI syntax: nbd:HOST:PORT[:exportname=NAME] or nbd:unix:PATH[:exportname=NAME]. */
    private static NbdAddress parseLegacy(String text) {
        String rest = text.substring("nbd:".length());
        String export = "";
        int name = rest.indexOf(":exportname=");
        if (name >= 0) {
            export = rest.substring(name + ":exportname=".length());
            rest = rest.substring(0, name);
        }
        try {
            if (rest.startsWith("unix:")) {
                String socket = rest.substring("unix:".length());
                if (socket.isEmpty()) {
                    throw bad(text, "nbd:unix: needs a socket path");
                }
                return new Unix(path(text, socket), export);
            }
            int colon = rest.lastIndexOf(':');
            if (colon <= 0) {
                throw bad(text, "expected nbd:HOST:PORT or nbd:unix:PATH");
            }
            int port;
            try {
                port = Integer.parseInt(rest.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw bad(text, "'" + rest.substring(colon + 1) + "' is not a port number");
            }
            return new Tcp(rest.substring(0, colon), port, export);
        } catch (IllegalArgumentException e) {
            if (e.getMessage() != null && e.getMessage().startsWith("invalid NBD address")) {
                throw e;
            }
            throw bad(text, e.getMessage());
        }
    }

    private static IllegalArgumentException bad(String text, String why) {
        return new IllegalArgumentException("invalid NBD address '" + text + "': " + why);
    }
}
