# PROT_EXEC alone: executable; x86-64 also lets it be read.
a = mmap 0 1p rw private|anonymous
write $a 1 0xc3
mprotect $a 1p x           => ok
exec $a                    => ok
read $a 1
