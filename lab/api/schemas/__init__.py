"""Request and response bodies of the booking API, split by direction (…Create in, …Out back)."""
