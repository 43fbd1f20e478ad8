package catalog

import "time"

// SetClock replaces the cache's clock, for tests of what expires.
func SetClock(c *Cache, now func() time.Time) { c.now = now }

const SearchQueries = searchQueries
