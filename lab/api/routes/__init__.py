"""One router per resource (products, bookings, slots, firmware, samples, runs, reports, reviews)."""
