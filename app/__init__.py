"""segmap's HTTP service and command-line interface (thin layers over spatial/ and maps/)."""
