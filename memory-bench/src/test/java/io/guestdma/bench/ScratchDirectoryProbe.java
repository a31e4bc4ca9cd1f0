package io.guestdma.bench;

import java.nio.file.Files;

/**
 * Run in a JVM of its own by {@link ScratchDirectoryTest}: creates a scratch directory with a file
 * in it and starts a child process that would outlive it, says both ({@code dir=}, {@code child=}),
 * then waits to be stopped.
 */
final class ScratchDirectoryProbe {
    private ScratchDirectoryProbe() {
    }

    /**
     * @param args none
     * @throws Exception if the directory or the child cannot be made
     */
    public static void main(String[] args) throws Exception {
        var dir = ScratchDirectory.create("guestdma-scratch-probe");
        Files.writeString(Files.createDirectory(dir.resolve("sub")).resolve("image"), "data");
        Process child = new ProcessBuilder("sleep", "600").start();
        System.out.println("dir=" + dir);
        System.out.println("child=" + child.pid());
        System.out.flush();
        Thread.sleep(600_000);
    }
}
