package io.guestdma.ide;

import java.util.ArrayList;
import java.util.List;

/** An {@link IrqLine} that remembers its level and every transition. */
final class IrqRecorder implements IrqLine {
    private final List<Boolean> transitions = new ArrayList<>();
    private boolean level;

    @Override
    public synchronized void set(boolean newLevel) {
        transitions.add(newLevel);
        level = newLevel;
    }

    synchronized boolean level() {
        return level;
    }

    synchronized List<Boolean> transitions() {
        return List.copyOf(transitions);
    }
}
