# delivery-extra-conn.sh with the extra connection refused in reply to EHLO, not at the
# greeting: "220", then "421 4.7.0 too many connections" to EHLO (a server that counts
# its connections at EHLO).  Also the server's limit while another connection of ours
# delivers, not an outage: the refused worker tries again soon (docs/delivery.md).
REFUSE_AT=ehlo
. "$ROOT/tests/integration/delivery-extra-conn.sh"
