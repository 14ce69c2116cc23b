"""Personal data: retention (GDPR Art. 5(1)(e)), the access export (Art. 15) and erasure
(Art. 17). `purge` holds the steps both share: dropping a mail's content, the blob reference
check (SCENARIOS F7), the copies on IMAP, anonymising a case."""
