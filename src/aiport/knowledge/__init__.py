"""Knowledge: documents in collections, extracted, chunked and searchable with citations."""
