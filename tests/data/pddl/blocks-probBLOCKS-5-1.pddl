;; Five blocks: the tower A-E-D (A on top) and B-C must become the single tower A on B on C on D on E.
(define (problem BLOCKS-5-1)
  (:domain BLOCKS)
  (:objects A B C D E)
  (:init (CLEAR A) (CLEAR B) (ONTABLE D) (ONTABLE C)
         (ON A E) (ON E D) (ON B C) (HANDEMPTY))
  (:goal (AND (ON A B) (ON B C) (ON C D) (ON D E))))
