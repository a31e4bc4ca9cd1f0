# Sourced by the bin/ scripts: picks a JDK >= 25 and exports JAVA_HOME, or explains and exits.
# Order: $JAVA_HOME if it is new enough, then every JDK under /usr/lib/jvm, newest first.

guestdma_java_major() {
    # Prints the feature version of the JDK at $1 ("25"), or nothing if $1 is not a JDK.
    local home=$1 line
    [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || return 0
    line=$("$home/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
    printf '%s' "${line%%.*}"
}

guestdma_find_jdk() {
    local candidate major
    for candidate in "${JAVA_HOME:-}" $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
        [ -n "$candidate" ] || continue
        candidate=${candidate%/}
        major=$(guestdma_java_major "$candidate")
        if [ -n "$major" ] && [ "$major" -ge 25 ] 2>/dev/null; then
            export JAVA_HOME=$candidate
            export PATH="$JAVA_HOME/bin:$PATH"
            # Maven 3.8's bundled Guava uses sun.misc.Unsafe; JDK 24+ warns about it on every run.
            # It is Maven's, not ours: keep the user's console clean.
            case " ${MAVEN_OPTS:-} " in
                *sun-misc-unsafe-memory-access*) ;;
                *) export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow" ;;
            esac
            return 0
        fi
    done
    cat >&2 <<'MSG'
guestdma needs a JDK 25 or newer (it is built on the Foreign Function & Memory API).
None was found in $JAVA_HOME or under /usr/lib/jvm/.
Install one, for example:
    apt-get install temurin-25-jdk        (Adoptium's apt repository)
    or unpack a JDK 25 and run:  JAVA_HOME=/path/to/jdk-25 bin/test
MSG
    exit 1
}

guestdma_require_maven() {
    if ! command -v mvn >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "guestdma: installing Maven (apt-get install maven)" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
        fi
    fi
    command -v mvn >/dev/null 2>&1 || { echo "guestdma: Apache Maven 3.8+ is required (apt-get install maven)" >&2; exit 1; }
}
