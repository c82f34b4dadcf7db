# After fork, a private page written by the child is the child's copy.
a = mmap 0 1p rw private|anonymous
write $a 1p 0x10
fork {
  write $a 2 0x20
  read $a 3
}
read $a 3
