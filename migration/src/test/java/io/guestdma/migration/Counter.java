package io.guestdma.migration;

/** A device section for tests: a value, saved as a u64 and a label. */
final class Counter implements DeviceState {
    private final String id;
    long value;
    String label = "";
    int loads;

    Counter(String id, long value) {
        this.id = id;
        this.value = value;
    }

    @Override
    public String sectionId() {
        return id;
    }

    @Override
    public int version() {
        return 2;
    }

    @Override
    public void save(StateWriter out) {
        out.u64(value).string(label);
    }

    @Override
    public void load(StateReader in, int version) throws MigrationFormatException {
        value = in.u64("value");
        label = in.string("label", 64);
        loads++;
    }
}
