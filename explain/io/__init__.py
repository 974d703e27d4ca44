"""Input handling: bytes, files and arrays in, RGB uint8 out; size limits; DICOM; format sniffing."""
