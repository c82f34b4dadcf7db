# On x86-64 a writable page is readable.
a = mmap 0 1p w private|anonymous
write $a 10 0x33
read $a 10                 => ok
