package results

import "time"

// SetClock makes l read the time from now; call it before Run.
func SetClock(l *Live, now func() time.Time) { l.now = now }
