package io.guestdma.net;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.fail;
import static org.assertj.core.api.Assumptions.assumeThat;

/** External programs the tests use as references. */
final class Tools {
    private Tools() {
    }

    /**
     * The tool's path; skips the test when it is missing, except in CI (env CI=true), where a
     * missing reference must fail: bin/test installs it.
     */
    static String require(String tool, String debianPackage) {
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/usr/sbin").split(":")) {
            Path candidate = Path.of(dir, tool);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        for (String dir : new String[] {"/usr/sbin", "/usr/bin"}) {
            Path candidate = Path.of(dir, tool);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        String why = tool + " not found (apt-get install " + debianPackage + ")";
        if ("true".equalsIgnoreCase(System.getenv("CI"))) {
            fail(why + "; CI must have it (bin/test installs it)");
        }
        assumeThat(false).as(why).isTrue();
        return null;
    }
}
