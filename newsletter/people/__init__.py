"""One person across every domain: the links that name them, their data export, the admin's
page about them, and their erasure, each asking every owner for its part."""
