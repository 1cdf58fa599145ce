"""Everything that talks to the outside: sources bring documents in, channels take publications out."""
